package safe

import (
	"errors"
	"testing"

	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

type bomb struct{}

func (b bomb) Error() string { panic(b) }

func TestText(t *testing.T) {
	if got := Text(errors.New("plain")); got != "plain" {
		t.Fatalf("Text of a plain error = %q", got)
	}
	if got := Text(bomb{}); got != "safe.bomb (its text panics)" {
		t.Fatalf("Text of an error whose Error panics with itself = %q", got)
	}
}
