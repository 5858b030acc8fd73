package backitest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backitest"
)

// The test the package documentation shows, as it is there.
func TestOutboxRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sends := 0
		w := backi.Loop("outbox", func(ctx context.Context) error {
			if sends++; sends <= 2 {
				return errors.New("broker unavailable")
			}
			return nil
		})
		backitest.RunN(t, w, 3)
		if s := w.Status(); s.Iterations != 3 || s.Failures != 2 {
			t.Errorf("%d iterations, %d failures; want 3 and 2", s.Iterations, s.Failures)
		}
	})
}

// The package documentation shows TestOutboxRetries as this file has it.
func TestDocShowsTestOutboxRetries(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var shown strings.Builder
	for line := range strings.Lines(string(doc)) {
		if code, ok := strings.CutPrefix(line, "//\t"); ok {
			shown.WriteString(code)
		}
	}
	src, err := os.ReadFile("doc_test.go")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), "func TestOutboxRetries")
	if start < 0 {
		t.Fatal("doc_test.go has no TestOutboxRetries")
	}
	end := strings.Index(string(src[start:]), "\n}\n")
	if test := string(src[start:start+end]) + "\n}\n"; shown.String() != test {
		t.Errorf("the package documentation shows\n%s\nbut doc_test.go has\n%s", shown.String(), test)
	}
}
