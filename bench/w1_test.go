package bench

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/thejerf/suture/v4"
	"k8s.io/apimachinery/pkg/util/wait"
)

var quiet = slog.New(slog.DiscardHandler)

// BenchmarkW1 is the overhead of one empty iteration under each runner.
func BenchmarkW1(b *testing.B) {
	ctx := context.Background()
	b.Run("runner=bare", func(b *testing.B) {
		b.ReportAllocs()
		fn, done := unit(b.N), ctx.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if fn(ctx) != nil {
				return
			}
		}
	})
	b.Run("runner=bare+recover", func(b *testing.B) {
		b.ReportAllocs()
		fn := unit(b.N)
		for recovered(ctx, fn) == nil {
		}
	})
	b.Run("runner=bare+recover+clock+counters", func(b *testing.B) {
		b.ReportAllocs()
		fn := unit(b.N)
		var started, last, successes atomic.Int64
		for {
			started.Store(time.Now().UnixNano())
			err := recovered(ctx, fn)
			end := time.Now()
			if err != nil {
				return
			}
			successes.Add(1)
			last.Store(end.UnixNano())
		}
	})
	b.Run("runner=backi.Loop", func(b *testing.B) {
		b.ReportAllocs()
		fn := unit(b.N)
		w := backi.Loop("w1", func(ctx context.Context) error {
			if fn(ctx) != nil {
				return backi.Stop(nil)
			}
			return nil
		}, backi.WithLogger(quiet))
		if err := w.Run(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("runner=backi.Continuous+Defer", func(b *testing.B) {
		b.ReportAllocs()
		fn := unit(b.N)
		cleanup := func(context.Context) error { return nil }
		it := backi.IterationFunc(func(ctx context.Context) error {
			if fn(ctx) != nil {
				return backi.Stop(nil)
			}
			return nil
		})
		w := backi.Continuous("w1", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			s.Defer(cleanup)
			return it, nil
		}, backi.WithLogger(quiet))
		if err := w.Run(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("runner=wait.UntilWithContext", func(b *testing.B) {
		b.ReportAllocs()
		fn := unit(b.N)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			if fn(ctx) != nil {
				cancel()
			}
		}, 0)
	})
	b.Run("runner=suture", func(b *testing.B) {
		b.ReportAllocs()
		// suture counts every return as a failure and backs off after a
		// few: the threshold is raised so that it restarts at once.
		sup := suture.New("w1", suture.Spec{FailureThreshold: math.MaxFloat64, FailureBackoff: time.Nanosecond, EventHook: func(suture.Event) {}})
		sup.Add(oneUnit{unit(b.N)})
		if err := sup.Serve(ctx); err != nil && !errors.Is(err, suture.ErrTerminateSupervisorTree) {
			b.Fatal(err)
		}
	})
	b.Run("runner=dotnet-transcription", func(b *testing.B) {
		b.ReportAllocs()
		fn := unit(b.N)
		runDotnetStyle(ctx, fn)
	})
}

// oneUnit is a suture service that does one unit and returns, to be restarted.
type oneUnit struct{ fn func(context.Context) error }

func (s oneUnit) Serve(ctx context.Context) error {
	if s.fn(ctx) != nil {
		return suture.ErrTerminateSupervisorTree
	}
	return nil
}

// runDotnetStyle transcribes the .NET package's design literally: for each
// iteration a scope is created through a factory (an interface, as
// IServiceScopeFactory), the iteration resolved from it, the scope disposed
// after, and exceptions caught and handed to a hook.
type serviceScope interface {
	iteration() func(context.Context) error
	dispose()
}

type scope struct {
	disposables []func()
	it          func(context.Context) error
}

func (s *scope) iteration() func(context.Context) error { return s.it }

func (s *scope) dispose() {
	for i := len(s.disposables) - 1; i >= 0; i-- {
		s.disposables[i]()
	}
}

var createScope = func(fn func(context.Context) error) serviceScope { return &scope{it: fn} }

func runDotnetStyle(ctx context.Context, fn func(context.Context) error) {
	for ctx.Err() == nil {
		s := createScope(fn)
		err := func() (err error) {
			defer s.dispose()
			return recovered(ctx, s.iteration())
		}()
		if errors.Is(err, errDone) {
			return
		}
		if err != nil {
			onException(err)
		}
	}
}

func onException(error) {}
