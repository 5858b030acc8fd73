package backitest_test

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backitest"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// quiet keeps a worker's logs out of the test's output.
var quiet = backi.WithLogger(slog.New(slog.DiscardHandler))

// fakeT stands for a test in the tests of the helpers' failures: Fatalf
// records the failure and ends the goroutine, as testing's does, without
// failing the real test.
type fakeT struct {
	mu   sync.Mutex
	msgs []string
}

func (*fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

// failure runs fn with a fakeT on a goroutine of its own, as a test of its
// own, and returns the one failure fn reported. It fails t if fn reported
// none, or went on after reporting one.
func failure(t *testing.T, fn func(ft backitest.TB)) string {
	t.Helper()
	ft := &fakeT{}
	done := make(chan struct{})
	wentOn := false
	go func() {
		defer close(done)
		fn(ft)
		wentOn = true
	}()
	<-done
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if len(ft.msgs) != 1 || wentOn {
		t.Fatalf("want one failure that ends the goroutine; got %q, went on: %v", ft.msgs, wentOn)
	}
	t.Log(ft.msgs[0])
	return ft.msgs[0]
}

// returningT is a TB whose Fatalf returns, as some test frameworks' do.
type returningT struct{ msgs []string }

func (*returningT) Helper() {}

func (r *returningT) Fatalf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
