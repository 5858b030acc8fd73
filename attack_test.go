package backi_test

// The attack tests: hostile inputs, faults and misuse that the hardened core
// still mishandles. Each test fails while the bug it shows is there. Helpers
// are in hostile_test.go and helpers_test.go.

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/childtest"
)

// bomb is an error and a Stringer whose methods panic with the bomb itself:
// fmt contains one level of panic in a method, not a panic value that panics
// again when printed, so fmt.Sprint(bomb{}) panics.
type bomb struct{}

func (b bomb) Error() string  { panic(b) }
func (b bomb) String() string { panic(b) }

// A self-panicking error value, returned or panicked by an iteration, or
// panicked by an observer or a log handler, crashes the process from a
// loop's goroutine.
func TestAttackSelfPanickingValueCrashes(t *testing.T) {
	cases := []struct {
		name string
		fn   func(ctx context.Context) error
		opts []backi.Option
	}{
		{"Returned", func(context.Context) error { return bomb{} }, nil},
		{"Panicked", func(context.Context) error { panic(bomb{}) }, nil},
		{"ObserverPanic", func(context.Context) error { return backi.ErrNoWork },
			[]backi.Option{backi.WithObserver(bombObserver{})}},
		{"HandlerPanic", func(context.Context) error { return backi.ErrNoWork },
			[]backi.Option{backi.WithLogger(slog.New(bombHandler{}))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			childtest.Run(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					opts := append([]backi.Option{backi.WithLogger(quiet), backi.WithConcurrency(2),
						backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithIdle(time.Second, time.Second)}, tc.opts...)
					w := backi.Loop("bombed", tc.fn, opts...)
					r := runWorker(t, w)
					time.Sleep(10 * time.Second)
					if err := r.stop(); err != nil {
						t.Fatalf("Run = %v, want nil at the context's end", err)
					}
				})
			})
		})
	}
}

type bombObserver struct{}

func (bombObserver) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	panic(bomb{})
}
func (bombObserver) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {}
func (bombObserver) StateChange(string, int, backi.State, backi.State)                         {}

type bombHandler struct{}

func (bombHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (bombHandler) Handle(context.Context, slog.Record) error { panic(bomb{}) }
func (h bombHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h bombHandler) WithGroup(string) slog.Handler           { return h }

// hostileHandler is a slog.Handler that fails as mode says: "panic" panics in
// Handle, "nilWithAttrs" returns a nil handler from WithAttrs. Otherwise it
// passes records to next.
type hostileHandler struct {
	mode string
	next slog.Handler
}

func (h hostileHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (h hostileHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.mode == "panic" {
		panic("hostile handler: Handle")
	}
	return h.next.Handle(ctx, r)
}
func (h hostileHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.mode == "nilWithAttrs" {
		return nil
	}
	return hostileHandler{h.mode, h.next.WithAttrs(as)}
}
func (h hostileHandler) WithGroup(string) slog.Handler { return h }

// The host logs with its logger as it is: a handler that panics takes
// Host.Run down with it ("host started"), without stopping its services in
// order or waiting for their in-flight iterations.
func TestAttackHostLogHandlerPanic(t *testing.T) {
	childtest.Run(t, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			h := backi.NewHost(backi.WithSignals(), backi.WithLogger(slog.New(hostileHandler{mode: "panic"})))
			w := blocking("a")
			h.Add(w)
			time.AfterFunc(time.Minute, cancel)
			var err error
			func() {
				defer func() {
					if v := recover(); v != nil {
						err = errors.New("Host.Run panicked: " + strings.TrimSpace(strings.SplitN(toString(v), "\n", 2)[0]))
						cancel()
						// let the abandoned worker end, for synctest
						for w.Status().State == backi.StateRunning || w.Status().State == backi.StateIdle {
							time.Sleep(time.Second)
						}
					}
				}()
				err = h.Run(ctx)
			}()
			if err != nil {
				t.Fatalf("Host.Run = %v, want nil after a requested stop", err)
			}
		})
	})
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	}
	return "non-string panic"
}

// panicName is a Service whose Name method panics.
type panicName struct{}

func (panicName) Name() string                  { panic("hostile service: Name") }
func (panicName) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Host.Run calls each service's Name uncontained: a Name that panics, or a nil
// *Worker added by mistake, panics out of Host.Run instead of being an error.
func TestAttackHostServiceMisuseIsAnErrorNotAPanic(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  backi.Service
	}{
		{"NamePanics", panicName{}},
		{"NilWorker", (*backi.Worker)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
			h.Add(tc.svc)
			var err error
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Fatalf("Host.Run panicked: %v; want an error naming the service", v)
					}
				}()
				err = h.Run(t.Context())
			}()
			if err == nil {
				t.Fatalf("Host.Run = nil, want an error about the service")
			}
		})
	}
}

// unwrapBomb is an error whose Unwrap panics.
type unwrapBomb struct{}

func (unwrapBomb) Error() string { return "hostile: Unwrap panics" }
func (unwrapBomb) Unwrap() error { panic("hostile error: Unwrap") }

// erroring is a Service that returns err at once.
type erroring struct{ err error }

func (erroring) Name() string                { return "erroring" }
func (s erroring) Run(context.Context) error { return s.err }

// A service's error is inspected (errors.As in stopsHost) on Host.Run's
// goroutine, uncontained: an error whose Unwrap panics panics out of
// Host.Run and leaves the other services running.
func TestAttackHostServiceErrorPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		log  *slog.Logger
	}{
		{"UnwrapPanics", unwrapBomb{}, quiet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			childtest.Run(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					h := backi.NewHost(backi.WithSignals(), backi.WithLogger(tc.log))
					other := blocking("other")
					h.Add(erroring{tc.err}, other)
					var err error
					var panicked any
					func() {
						defer func() { panicked = recover() }()
						err = h.Run(t.Context())
					}()
					if panicked != nil {
						t.Errorf("Host.Run panicked (%v); want an error naming the service; worker %q left %v",
							panicked, other.Name(), other.Status().State)
						return
					}
					if err == nil {
						t.Errorf("Host.Run = nil, want the service's error")
					}
				})
			})
		})
	}
}

// A failure hook that gives up by returning f.Err, as .NET's OnException
// rethrows: when f.Err is a panic, the hook is taken to have panicked, logged
// as such, and the worker goes on instead of stopping.
func TestAttackHookReturningAPanicErrorIsNotAPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		var runs atomic.Int64
		w := backi.Loop("gives-up", func(context.Context) error {
			runs.Add(1)
			panic("boom")
		}, backi.WithLogger(log), backi.WithBackoff(backi.ConstantBackoff(time.Second)),
			backi.WithOnFailure(func(_ context.Context, f backi.Failure) (time.Duration, error) {
				return 0, f.Err // give up: the worker ends with the failure
			}))
		r := runWorker(t, w)
		time.Sleep(10 * time.Second)
		err, ended := r.returned()
		if !ended {
			t.Errorf("the hook returned f.Err, yet the worker still runs after %d iterations", runs.Load())
		} else {
			var pe *backi.PanicError
			if !errors.As(err, &pe) {
				t.Errorf("Run = %v, want the *PanicError the hook returned", err)
			}
		}
		if got := rec.find("failure hook panicked"); len(got) > 0 {
			t.Errorf("%d records \"failure hook panicked\" for a hook that never panicked", len(got))
		}
	})
}

// The failure hook's error is inspected with errors.As outside any recover:
// an error whose Unwrap panics crashes the process from a loop's goroutine.
func TestAttackHookErrorWithPanickingUnwrap(t *testing.T) {
	childtest.Run(t, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backi.Loop("hooked", func(context.Context) error { return errHostile },
				backi.WithLogger(quiet), backi.WithConcurrency(2),
				backi.WithOnFailure(func(context.Context, backi.Failure) (time.Duration, error) { return 0, unwrapBomb{} }))
			r := runWorker(t, w)
			time.Sleep(10 * time.Second)
			err, ended := r.returned()
			if !ended {
				r.stop()
				t.Fatalf("the hook returned an error, yet the worker still runs")
			}
			if _, ok := err.(unwrapBomb); !ok {
				t.Fatalf("Run = %v, want the hook's error", err)
			}
		})
	})
}

// A panic while the worker stops (in the iteration or in a cleanup) is
// classed as shutdown and dropped: not logged, not counted, invisible.
func TestAttackPanicDuringShutdownIsSilent(t *testing.T) {
	for _, where := range []string{"Iteration", "Cleanup"} {
		t.Run(where, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, rec := newRecorder()
				w := backi.Continuous("closing", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
					if where == "Cleanup" {
						s.Defer(func(context.Context) error { panic("cleanup: nil map write") })
					}
					return backi.IterationFunc(func(ctx context.Context) error {
						<-ctx.Done()
						if where == "Iteration" {
							panic("iteration: nil map write")
						}
						return ctx.Err()
					}), nil
				}, backi.WithLogger(log))
				r := runWorker(t, w)
				time.Sleep(time.Second)
				if err := r.stop(); err != nil {
					t.Fatalf("Run = %v", err)
				}
				var seen bool
				for _, rec := range rec.all() {
					if rec.Level >= slog.LevelError && strings.Contains(rec.Attrs["err"].String(), "nil map write") {
						seen = true
					}
				}
				if !seen {
					t.Errorf("the %s's panic during shutdown was not logged at Error; Status %+v; records %v",
						strings.ToLower(where), w.Status(), rec.atLeast(slog.LevelDebug))
				}
			})
		})
	}
}

// flappingElector grants a term at once on every Campaign; each term is lost
// as soon as an iteration runs in it (the iteration calls lose). After 100
// campaigns at one instant it stops granting.
type flappingElector struct {
	mu        sync.Mutex
	campaigns []time.Time
	guard     spinGuard
}

type flappingTerm struct {
	done chan struct{}
	once sync.Once
}

func (t *flappingTerm) Done() <-chan struct{}        { return t.done }
func (t *flappingTerm) Token() uint64                { return 1 }
func (t *flappingTerm) Resign(context.Context) error { return nil }
func (t *flappingTerm) lose()                        { t.once.Do(func() { close(t.done) }) }

func (e *flappingElector) Campaign(ctx context.Context) (backi.Term, error) {
	e.mu.Lock()
	e.campaigns = append(e.campaigns, time.Now())
	spinning := e.guard.spinning()
	e.mu.Unlock()
	if spinning {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &flappingTerm{done: make(chan struct{})}, nil
}

// A term lost while its first iteration runs counts as fruitful, since the
// iteration cut short is counted: a flapping elector makes the worker
// campaign and start iterations back to back, without any wait.
func TestAttackFlappingTermSpins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &flappingElector{}
		w := backi.Loop("singleton", func(ctx context.Context) error {
			term, _ := backi.TermFrom(ctx)
			term.(*flappingTerm).lose() // e.g. the lease check fails at once
			<-ctx.Done()
			return ctx.Err()
		}, backi.WithLeader(e), backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(10 * time.Second)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		spaced(t, "campaigns", e.campaigns)
		if len(e.campaigns) > 20 {
			t.Errorf("%d campaigns in 10s with a 1s backoff, want at most 20", len(e.campaigns))
		}
	})
}

// Goexit in the iteration of a leading worker with one loop ends the Run
// goroutine inside holdTerm: the term is never resigned, and Status still
// says the replica leads.
func TestAttackGoexitWhileLeadingKeepsTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFakeElector()
		w := backi.Loop("singleton", func(ctx context.Context) error { runtime.Goexit(); return nil },
			backi.WithLeader(e), backi.WithLogger(quiet))
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			w.Run(t.Context())
		}()
		e.grant(7)
		<-exited
		synctest.Wait()
		st := w.Status()
		if st.Leader {
			t.Errorf("after Run's goroutine ended: Status.Leader = true (since %v), State %v", st.LeaderSince, st.State)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.resigned) != 1 {
			t.Errorf("Resign called for terms %v, want term 7 resigned as the worker ended", e.resigned)
		}
	})
}

// Goexit in a callback that runs after the turn was counted (the failure
// hook, IterationEnd) counts the same turn again as a failure, and calls the
// failure hook a second time.
func TestAttackGoexitAfterTheTurnCountsItTwice(t *testing.T) {
	for _, where := range []string{"Hook", "IterationEnd"} {
		t.Run(where, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var hooks, iterations atomic.Int64
				opts := []backi.Option{backi.WithLogger(quiet), backi.WithConcurrency(2)}
				fn := func(ctx context.Context) error {
					if iterations.Add(1) == 1 {
						if where == "Hook" {
							return errHostile
						}
						return nil
					}
					<-ctx.Done()
					return nil
				}
				if where == "Hook" {
					opts = append(opts, backi.WithOnFailure(func(context.Context, backi.Failure) (time.Duration, error) {
						hooks.Add(1)
						runtime.Goexit()
						return 0, nil
					}))
				} else {
					opts = append(opts, backi.WithObserver(goexitObserver{}))
				}
				w := backi.Loop("goexit", fn, opts...)
				err := w.Run(t.Context())
				if !errors.Is(err, backi.ErrGoexit) {
					t.Errorf("Run = %v, want an error matching ErrGoexit", err)
				}
				st := w.Status()
				finished := iterations.Load() // each iteration ran to its end
				if st.Iterations != uint64(finished) {
					t.Errorf("Status.Iterations = %d (successes %d, failures %d) for %d iterations run",
						st.Iterations, st.Successes, st.Failures, finished)
				}
				if st.State != backi.StateFailed {
					t.Errorf("Status.State = %v after Run ended by Goexit, want failed", st.State)
				}
				if where == "Hook" && hooks.Load() != 1 {
					t.Errorf("the failure hook was called %d times for one failure", hooks.Load())
				}
			})
		})
	}
}

// goexitObserver calls runtime.Goexit in IterationEnd.
type goexitObserver struct{}

func (goexitObserver) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}
func (goexitObserver) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {
	runtime.Goexit()
}
func (goexitObserver) StateChange(string, int, backi.State, backi.State) {}

// WithCleanupTimeout(math.MaxInt64), "no timeout", overflows timeout +
// cleanupGrace: the abandon timer fires at once, and every cleanup that
// takes any time at all is abandoned and fails its turn.
func TestAttackHugeCleanupTimeoutAbandonsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var turns atomic.Int64
		w := backi.Continuous("tx", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			s.Defer(func(context.Context) error { time.Sleep(time.Millisecond); return nil }) // a quick rollback
			return backi.IterationFunc(func(context.Context) error {
				if turns.Add(1) == 3 {
					return backi.Stop(nil)
				}
				return nil
			}), nil
		}, backi.WithLogger(quiet), backi.WithCleanupTimeout(math.MaxInt64), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Errorf("Run = %v, want nil after Stop(nil)", err)
		}
		if st := w.Status(); st.Failures != 0 {
			t.Errorf("Failures = %d, LastError = %v; want no failure for 1ms cleanups", st.Failures, st.LastError)
		}
		time.Sleep(time.Second) // the abandoned cleanups end
	})
}

// EveryFrom with an anchor more than 292 years away (the zero time.Time,
// "boundaries since year 1") overflows time.Duration: Next is not after its
// argument, so the runs fall back to the backoff instead of the period.
func TestAttackEveryFromAFarAnchor(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 17, 0, 0, time.UTC)
	for _, anchor := range []time.Time{{}, time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)} {
		next := backi.EveryFrom(anchor, time.Hour).Next(now)
		if !next.After(now) || next.Sub(now) > time.Hour {
			t.Errorf("EveryFrom(%v, time.Hour).Next(%v) = %v, want within the next hour", anchor, now, next)
		}
	}
}

// A stopped periodic worker keeps showing the run it will never make.
func TestAttackStoppedWorkerShowsANextRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("hourly", func(context.Context) error { return nil },
			backi.WithSchedule(backi.Every(time.Hour)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(time.Minute)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if st := w.Status(); !st.NextRun.IsZero() {
			t.Errorf("Status after Run returned: State %v, NextRun %v; want no next run", st.State, st.NextRun)
		}
	})
}

// Misuse that panics instead of being an error.
func TestAttackMisuseIsAnErrorNotAPanic(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"HugeConcurrency", func() error {
			return backi.Loop("w", func(context.Context) error { return nil }, backi.WithConcurrency(math.MaxInt)).Run(context.Background())
		}},
		{"NilContext", func() error {
			//lint:ignore SA1012 misuse on purpose
			return backi.Loop("w", func(context.Context) error { return nil }).Run(nil) //nolint:staticcheck
		}},
		{"NilWorker", func() error { return (*backi.Worker)(nil).Run(context.Background()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Fatalf("panicked: %v; want an error", v)
					}
				}()
				err = tc.run()
			}()
			if err == nil {
				t.Fatalf("Run = nil, want an error")
			}
		})
	}
}

// blockingTerm's Resign ignores its context.
type blockingTerm struct{ release chan struct{} }

func (t *blockingTerm) Done() <-chan struct{}        { return nil }
func (t *blockingTerm) Token() uint64                { return 1 }
func (t *blockingTerm) Resign(context.Context) error { <-t.release; return nil }

type oneTermElector struct{ term backi.Term }

func (e oneTermElector) Campaign(ctx context.Context) (backi.Term, error) { return e.term, nil }

// blockingStore's SaveRun ignores its context.
type blockingStore struct {
	backi.MemoryStore
	release chan struct{}
}

func (s *blockingStore) SaveRun(ctx context.Context, name string, t time.Time) error {
	<-s.release
	return nil
}

// The callbacks the library bounds with a timeout (Resign within 5s, a
// ScheduleStore call within 5s) are waited for without bound when they
// ignore their context: Run does not return after its context ends.
func TestAttackBoundedCallbackIgnoringItsContextHangsRun(t *testing.T) {
	for _, what := range []string{"Resign", "SaveRun"} {
		t.Run(what, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var w *backi.Worker
				if what == "Resign" {
					w = backi.Loop("singleton", func(ctx context.Context) error { <-ctx.Done(); return nil },
						backi.WithLeader(oneTermElector{&blockingTerm{release}}), backi.WithLogger(quiet))
				} else {
					w = backi.Loop("periodic", func(ctx context.Context) error { return nil },
						backi.WithSchedule(backi.Every(time.Minute)), backi.WithLogger(quiet),
						backi.WithScheduleStore(&blockingStore{release: release}))
				}
				r := runWorker(t, w)
				time.Sleep(time.Minute)
				err := r.stop() // waits an hour of the bubble's clock
				close(release)
				if err != nil {
					t.Fatalf("%v (the %s ignoring its context holds Run)", err, what)
				}
			})
		})
	}
}

// An Observer whose IterationStart returns a context not derived from the one
// it was given (context.Background(), say) detaches the iteration from the
// worker: stopping the worker no longer cancels it, and Run hangs.
func TestAttackObserverDetachedContextHangsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		w := backi.Loop("traced", func(ctx context.Context) error {
			select {
			case <-ctx.Done():
			case <-release:
			}
			return ctx.Err()
		}, backi.WithObserver(detachingObserver{}), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(time.Second)
		err := r.stop()
		close(release)
		if err != nil {
			t.Fatalf("%v: the iteration was not cancelled", err)
		}
	})
}

type detachingObserver struct{}

func (detachingObserver) IterationStart(context.Context, backi.IterationEvent) context.Context {
	return context.Background()
}
func (detachingObserver) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {}
func (detachingObserver) StateChange(string, int, backi.State, backi.State)                         {}

// A Scope used after its turn (by a goroutine the iteration left behind)
// silently registers the cleanup with a later turn, which then fails for it.
func TestAttackDeferAfterTheTurnIsSilentlyMoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		var turns atomic.Int64
		w := backi.Continuous("leaky", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			n := turns.Add(1)
			if n == 1 {
				go func() {
					time.Sleep(time.Second) // after turn 1 ended
					s.Defer(func(context.Context) error { return errors.New("cleanup of turn 1") })
				}()
			}
			return backi.IterationFunc(func(ctx context.Context) error {
				if n == 2 {
					time.Sleep(2 * time.Second) // turn 2 is in flight when turn 1's goroutine defers
				}
				if n == 3 {
					return backi.Stop(nil)
				}
				return nil
			}), nil
		}, backi.WithLogger(log), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		err := w.Run(t.Context())
		if err != nil {
			t.Errorf("Run = %v", err)
		}
		if st := w.Status(); st.Failures != 0 {
			t.Errorf("turn 2 failed for turn 1's late cleanup: Failures %d, LastError %v; records %v",
				st.Failures, st.LastError, rec.atLeast(slog.LevelWarn))
		}
	})
}

// A log handler whose WithAttrs returns nil loses every record of the
// worker, failures included, with only a panic line on stderr per record.
func TestAttackNilWithAttrsLosesTheFailureLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		var n atomic.Int64
		w := backi.Loop("logged", func(context.Context) error {
			if n.Add(1) == 1 {
				return errHostile
			}
			return backi.Stop(nil)
		}, backi.WithLogger(slog.New(hostileHandler{mode: "nilWithAttrs", next: log.Handler()})),
			backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got := rec.find("iteration failed"); len(got) != 1 {
			t.Errorf("%d \"iteration failed\" records, want the failure logged (by the handler itself); records %v",
				len(got), rec.atLeast(slog.LevelDebug))
		}
	})
}

// WithLogger(new(slog.Logger)), a Logger with no handler, is accepted: every
// record is then lost.
func TestAttackZeroLoggerIsAnError(t *testing.T) {
	w := backi.Loop("w", func(context.Context) error { return backi.Stop(nil) }, backi.WithLogger(new(slog.Logger)))
	if err := w.Run(context.Background()); err == nil {
		t.Fatalf("Run with WithLogger(new(slog.Logger)) = nil, want an error naming WithLogger")
	}
}

// goexitStuckObserver calls runtime.Goexit in its first StateChange to
// StateStuck, on the stuck watcher's goroutine, and counts the stuck reports.
type goexitStuckObserver struct{ stuck *atomic.Int64 }

func (goexitStuckObserver) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}
func (goexitStuckObserver) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {
}
func (o goexitStuckObserver) StateChange(_ string, _ int, _, to backi.State) {
	if to == backi.StateStuck && o.stuck.Add(1) == 1 {
		runtime.Goexit()
	}
}

// Goexit on the stuck watcher's goroutine ends the watcher silently: no later
// iteration is ever reported stuck, and nothing says so.
func TestAttackGoexitKillsTheStuckWatcherSilently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		var stuck atomic.Int64
		w := backi.Loop("slow", func(ctx context.Context) error {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			return nil
		}, backi.WithLogger(log), backi.WithObserver(goexitStuckObserver{&stuck}), backi.WithStuckAfter(time.Second))
		r := runWorker(t, w)
		time.Sleep(time.Minute)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if n := stuck.Load(); n < 2 && !loggedError(rec, "slow", "") {
			t.Errorf("%d stuck reports for 12 iterations of 5s with WithStuckAfter(1s), and no Error record; records %v",
				n, rec.atLeast(slog.LevelWarn))
		}
	})
}

// A cleanup that registers another cleanup every time (a retry written as
// re-Defer) keeps the turn from ever ending: Run hangs after its context ends
// and the cleanups run back to back.
func TestAttackEndlessCleanupChainHangsRun(t *testing.T) {
	childtest.Run(t, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var cleanups atomic.Int64
			var guard spinGuard
			var mu sync.Mutex
			w := backi.Continuous("chain", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
				var retry func(context.Context) error
				retry = func(context.Context) error {
					cleanups.Add(1)
					mu.Lock()
					spinning := guard.spinning()
					mu.Unlock()
					if !spinning {
						s.Defer(retry)
					}
					return errors.New("not yet")
				}
				s.Defer(retry)
				return backi.IterationFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }), nil
			}, backi.WithLogger(quiet))
			r := runWorker(t, w)
			time.Sleep(time.Second)
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if n := cleanups.Load(); n > 101 {
				t.Errorf("%d cleanups ran back to back at one instant for one turn, want the first and at most 100 it registered", n)
			}
		})
	})
}

// WithJitter larger than the schedule's period is accepted, and then most
// runs silently vanish: each run's jitter counts as an overrun that skips
// the ticks it covers. Every(time.Minute) with WithJitter(time.Hour) runs
// about twice an hour instead of sixty times.
func TestAttackJitterOverThePeriodDropsRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		w := backi.Loop("spread", func(ctx context.Context) error { runs.Add(1); return nil },
			backi.WithSchedule(backi.Every(time.Minute)), backi.WithJitter(time.Hour), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(10 * time.Hour)
		err := r.stop()
		if err != nil && strings.Contains(err.Error(), "WithJitter") {
			return // refused: fine
		}
		if n := runs.Load(); n < 500 {
			t.Errorf("%d runs in 10h of Every(time.Minute) with WithJitter(time.Hour), want about 600 (or an error naming WithJitter)", n)
		}
	})
}

// A worker whose Run returned an error (an invalid option) still reads
// StateNew, "Run has not been called yet".
func TestAttackRejectedRunLeavesStatusNew(t *testing.T) {
	w := backi.Loop("bad", func(context.Context) error { return nil }, backi.WithConcurrency(0))
	if err := w.Run(context.Background()); err == nil {
		t.Fatal("Run with WithConcurrency(0) = nil, want an error")
	}
	if st := w.Status(); st.State == backi.StateNew {
		t.Errorf("Status.State = %v after Run returned an error, want failed", st.State)
	}
}

// nilTermElector returns a nil Term and a nil error.
type nilTermElector struct {
	mu    sync.Mutex
	calls []time.Time
}

func (e *nilTermElector) Campaign(context.Context) (backi.Term, error) {
	e.mu.Lock()
	e.calls = append(e.calls, time.Now())
	e.mu.Unlock()
	return nil, nil
}

// Pinned: an Elector that returns a nil Term and no error is a failed
// campaign, retried after the backoff, never an iteration without a term.
func TestAttackPinNilTermIsAFailedCampaign(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &nilTermElector{}
		var iterations atomic.Int64
		w := backi.Loop("singleton", func(ctx context.Context) error { iterations.Add(1); return nil },
			backi.WithLeader(e), backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(10 * time.Second)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		spaced(t, "campaigns", e.calls)
		if n := len(e.calls); n < 5 || n > 12 {
			t.Errorf("%d campaigns in 10s with a 1s backoff, want about 10", n)
		}
		// the last campaign may come as the worker stops: not a failure
		if st := w.Status(); iterations.Load() != 0 || st.CampaignFailures+1 < uint64(len(e.calls)) {
			t.Errorf("%d iterations, CampaignFailures %d for %d campaigns; want 0 iterations, every campaign failed",
				iterations.Load(), st.CampaignFailures, len(e.calls))
		}
	})
}

// Pinned: a cleanup that calls runtime.Goexit (on its own goroutine) fails
// its turn with an error matching ErrGoexit; the cleanups registered before
// it still run, and the worker goes on.
func TestAttackPinCleanupGoexitIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var turns, first atomic.Int64
		w := backi.Continuous("tx", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			n := turns.Add(1)
			s.Defer(func(context.Context) error { first.Add(1); return nil })
			if n == 1 {
				s.Defer(func(context.Context) error { runtime.Goexit(); return nil })
			}
			return backi.IterationFunc(func(context.Context) error {
				if n == 3 {
					return backi.Stop(nil)
				}
				return nil
			}), nil
		}, backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil after Stop(nil)", err)
		}
		st := w.Status()
		if st.Failures != 1 || !errors.Is(st.LastError, backi.ErrGoexit) {
			t.Errorf("Failures %d, LastError %v; want 1 failure matching ErrGoexit", st.Failures, st.LastError)
		}
		if first.Load() != 3 {
			t.Errorf("the first cleanup ran %d times in 3 turns", first.Load())
		}
	})
}

// Pinned: an Observer whose IterationStart returns nil leaves the iteration
// its own context: cancelled with the worker, and carrying the due time.
func TestAttackPinNilObserverContextKeepsTheLoopsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var scheduled atomic.Bool
		w := backi.Loop("traced", func(ctx context.Context) error {
			_, ok := backi.ScheduledFor(ctx)
			scheduled.Store(ok)
			<-ctx.Done()
			return ctx.Err()
		}, backi.WithObserver(nilContextObserver{}), backi.WithSchedule(backi.Every(time.Minute)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(90 * time.Second)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if !scheduled.Load() {
			t.Errorf("the iteration's context lost ScheduledFor")
		}
	})
}

type nilContextObserver struct{}

func (nilContextObserver) IterationStart(context.Context, backi.IterationEvent) context.Context {
	return nil
}
func (nilContextObserver) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {
}
func (nilContextObserver) StateChange(string, int, backi.State, backi.State) {}
