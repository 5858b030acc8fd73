package backi_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/backi-go/backi/internal/demotest"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) {
	demotest.Main(signalChild)
	leakcheck.Main(m)
}

// recorder is a slog.Handler that keeps every record, for assertions.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]record
	attrs []slog.Attr
}

type record struct {
	Level slog.Level
	Msg   string
	Attrs map[string]slog.Value
}

func newRecorder() (*slog.Logger, *recorder) {
	r := &recorder{mu: new(sync.Mutex), recs: new([]record)}
	return slog.New(r), r
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]slog.Value{}
	for _, a := range r.attrs {
		m[a.Key] = a.Value
	}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
	r.mu.Lock()
	*r.recs = append(*r.recs, record{rec.Level, rec.Message, m})
	r.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{mu: r.mu, recs: r.recs, attrs: append(slices.Clip(r.attrs), as...)}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) all() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.recs)
}

// find returns the records with the message msg.
func (r *recorder) find(msg string) []record {
	var out []record
	for _, rec := range r.all() {
		if rec.Msg == msg {
			out = append(out, rec)
		}
	}
	return out
}

// atLeast returns the records at level or above.
func (r *recorder) atLeast(level slog.Level) []string {
	var out []string
	for _, rec := range r.all() {
		if rec.Level >= level {
			out = append(out, rec.Msg+" "+strings.TrimSpace(rec.Attrs["err"].String()))
		}
	}
	return out
}
