package backifx_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/backi-go/backi/internal/leakcheck"
	"go.uber.org/fx"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// quiet discards what the host and its workers log.
var quiet = slog.New(slog.DiscardHandler)

// logs is a slog.Handler that keeps the messages and attributes of every
// record, for assertions.
type logs struct {
	mu   *sync.Mutex
	recs *[]map[string]string // "msg" and every attribute, as text
	with []slog.Attr
}

func newLogs() (*slog.Logger, *logs) {
	l := &logs{mu: new(sync.Mutex), recs: new([]map[string]string)}
	return slog.New(l), l
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *logs) Handle(_ context.Context, r slog.Record) error {
	rec := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range l.with {
		rec[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { rec[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	*l.recs = append(*l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *logs) WithAttrs(as []slog.Attr) slog.Handler {
	return &logs{mu: l.mu, recs: l.recs, with: append(slices.Clip(l.with), as...)}
}

func (l *logs) WithGroup(string) slog.Handler { return l }

// find returns the records whose message is msg.
func (l *logs) find(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range *l.recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// shutdowns counts the calls of the app's fx.Shutdowner, which it wraps
// through fx.Decorate, and passes them on.
type shutdowns struct {
	fx.Shutdowner
	n atomic.Int32
}

func (s *shutdowns) Shutdown(opts ...fx.ShutdownOption) error {
	s.n.Add(1)
	return s.Shutdowner.Shutdown(opts...)
}

// option returns the fx option that makes s the app's Shutdowner.
func (s *shutdowns) option() fx.Option {
	return fx.Decorate(func(real fx.Shutdowner) fx.Shutdowner {
		s.Shutdowner = real
		return s
	})
}
