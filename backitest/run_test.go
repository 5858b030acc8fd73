package backitest_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backitest"
)

// busy returns a worker whose iterations never wait, and the count of its
// iterations.
func busy(name string, opts ...backi.Option) (*backi.Worker, *atomic.Int64) {
	calls := new(atomic.Int64)
	w := backi.Loop(name, func(ctx context.Context) error {
		calls.Add(1)
		return nil
	}, append([]backi.Option{quiet}, opts...)...)
	return w, calls
}

// inAndOutOfABubble runs test inside a synctest bubble and outside one.
func inAndOutOfABubble(t *testing.T, test func(t *testing.T)) {
	t.Run("bubble", func(t *testing.T) { synctest.Test(t, test) })
	t.Run("real time", test)
}

func wantIn(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("the failure does not say %q:\n%s", p, msg)
		}
	}
}

// A worker whose iterations never wait gives a poll of Status no moment to
// look, and in a bubble keeps the clock still: RunN stops it right after the
// n-th iteration all the same.
func TestRunNStopsRightAfterTheNthIteration(t *testing.T) {
	inAndOutOfABubble(t, func(t *testing.T) {
		w, calls := busy("busy")
		if err := backitest.RunN(t, w, 5); err != nil {
			t.Fatalf("RunN: %v", err)
		}
		s := w.Status()
		if calls.Load() != 5 || s.Iterations != 5 || s.Successes != 5 || s.State != backi.StateStopped {
			t.Errorf("%d calls, status %+v; want 5 iterations, 5 successes, stopped", calls.Load(), s)
		}
	})
}

func TestRunNTakesNoRealTimeForTheDefaultBackoff(t *testing.T) {
	began := time.Now()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		w := backi.Loop("flaky", func(ctx context.Context) error {
			if calls++; calls <= 3 {
				return errors.New("down")
			}
			return nil
		}, quiet)
		if err := backitest.RunN(t, w, 4); err != nil {
			t.Fatalf("RunN: %v", err)
		}
		// The default backoff waits at least 500 ms, 500 ms, then 1 s.
		if took := time.Since(start); took < 2*time.Second {
			t.Errorf("the bubble's clock moved %v; want at least the 2 s of the backoff waits", took)
		}
		if s := w.Status(); s.Iterations != 4 || s.Failures != 3 || s.Successes != 1 {
			t.Errorf("status %+v; want 4 iterations, 3 failures, 1 success", s)
		}
	})
	if took := time.Since(began); took > time.Second {
		t.Errorf("took %v of real time", took)
	}
}

// The worker's own observer does not keep RunN from watching it.
func TestRunNWatchesAWorkerWithAnObserver(t *testing.T) {
	inAndOutOfABubble(t, func(t *testing.T) {
		rec := backitest.NewRecorder()
		w, _ := busy("observed", backi.WithObserver(rec))
		if err := backitest.RunN(t, w, 3); err != nil {
			t.Fatalf("RunN: %v", err)
		}
		if n := len(rec.Iterations()); n != 3 || w.Status().Iterations != 3 {
			t.Errorf("the recorder saw %d iterations, Status counts %d; want 3", n, w.Status().Iterations)
		}
	})
}

func TestRunNReturnsTheErrorThatEndsTheWorker(t *testing.T) {
	errDone := errors.New("all sent")
	calls := 0
	w := backi.Loop("stops", func(ctx context.Context) error {
		if calls++; calls == 2 {
			return backi.Stop(errDone)
		}
		return nil
	}, quiet)
	if err := backitest.RunN(t, w, 2); !errors.Is(err, errDone) {
		t.Errorf("RunN returned %v; want %v", err, errDone)
	}
}

// Each RunN counts the iterations of its own Run; Status counts them all.
func TestRunNAgain(t *testing.T) {
	w, calls := busy("again")
	backitest.RunN(t, w, 2)
	backitest.RunN(t, w, 3)
	if calls.Load() != 5 || w.Status().Iterations != 5 {
		t.Errorf("%d calls, %d iterations; want 5", calls.Load(), w.Status().Iterations)
	}
}

func TestRunNWithConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, calls := busy("parallel", backi.WithConcurrency(4))
		if err := backitest.RunN(t, w, 20); err != nil {
			t.Fatalf("RunN: %v", err)
		}
		if s := w.Status(); s.Iterations < 20 || int64(s.Iterations) != calls.Load() || s.State != backi.StateStopped {
			t.Errorf("%d calls, status %+v; want at least 20 iterations, each counted, stopped", calls.Load(), s)
		}
	})
}

// A worker that an iteration runs with its context is not the one RunN
// watches: its iterations do not count.
func TestRunNCountsOnlyItsWorker(t *testing.T) {
	var inner atomic.Int64
	outer := backi.Loop("outer", func(ctx context.Context) error {
		n := 0
		w := backi.Loop("inner", func(context.Context) error {
			inner.Add(1)
			if n++; n == 3 {
				return backi.Stop(nil)
			}
			return nil
		}, quiet)
		return w.Run(ctx)
	}, quiet)
	if err := backitest.RunN(t, outer, 2); err != nil {
		t.Fatalf("RunN: %v", err)
	}
	if s := outer.Status(); s.Iterations != 2 || inner.Load() != 6 {
		t.Errorf("outer ran %d iterations, inner %d; want 2 and 6", s.Iterations, inner.Load())
	}
}

func TestRunNFailsWhenRunReturnsFirst(t *testing.T) {
	errDone := errors.New("nothing left")
	for _, tc := range []struct {
		name  string
		stop  error
		wants []string
	}{
		{"error", backi.Stop(errDone), []string{"Run returned an error (nothing left)", "state failed"}},
		{"nil", backi.Stop(nil), []string{"Run returned nil", "state stopped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			w := backi.Loop("stopper", func(ctx context.Context) error {
				if calls++; calls == 2 {
					return tc.stop
				}
				return nil
			}, quiet)
			msg := failure(t, func(ft backitest.TB) { backitest.RunN(ft, w, 5) })
			wantIn(t, msg, append(tc.wants, `backitest: RunN("stopper", 5)`, "5 iterations to end (2 ended)", "2 iterations")...)
		})
	}
}

func TestRunNFailsPastItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("idler", func(ctx context.Context) error { return backi.ErrNoWork }, quiet)
		start := time.Now()
		msg := failure(t, func(ft backitest.TB) { backitest.RunN(ft, w, 100, backitest.Within(10*time.Second)) })
		// Idle waits of 1, 2 and 4 s: iterations end at 0, 1, 3 and 7 s.
		wantIn(t, msg, `backitest: RunN("idler", 100): waited 10s for 100 iterations to end (4 ended)`,
			"backitest.Within", "state idle, 4 iterations (0 successes, 0 failures, 4 no work)")
		if took := time.Since(start); took != 10*time.Second {
			t.Errorf("failed after %v; want 10s", took)
		}
		if s := w.Status(); s.State != backi.StateStopped {
			t.Errorf("the worker is %s; want it stopped", s.State)
		}
	})
}

func TestRunNDefaultBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("slow", func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		}, quiet)
		start := time.Now()
		msg := failure(t, func(ft backitest.TB) { backitest.RunN(ft, w, 1) })
		wantIn(t, msg, "waited 1m0s for 1 iteration to end (0 ended)", "state running", "one in flight for 1m0s")
		if took := time.Since(start); took != backitest.DefaultWithin {
			t.Errorf("failed after %v; want %v", took, backitest.DefaultWithin)
		}
	})
}

func TestRunNFailsWhenRunDoesNotReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		w := backi.Loop("deaf", func(ctx context.Context) error {
			<-release // ignores ctx
			return nil
		}, quiet)
		msg := failure(t, func(ft backitest.TB) { backitest.RunN(ft, w, 1, backitest.Within(time.Second)) })
		wantIn(t, msg, `backitest: RunN("deaf", 1): Run did not return within 1s once its context was cancelled`,
			"left running", "one in flight for 2s")
		close(release) // lets the goroutine RunN left behind end
	})
}

func TestRunNReportsGoexit(t *testing.T) {
	calls := 0
	w := backi.Loop("goexit", func(ctx context.Context) error {
		if calls++; calls == 2 {
			runtime.Goexit()
		}
		return nil
	}, quiet)
	msg := failure(t, func(ft backitest.TB) { backitest.RunN(ft, w, 3) })
	wantIn(t, msg, "Run did not return: its goroutine called runtime.Goexit", "3 iterations to end (1 ended)")
}

func TestRunNReportsAWorkerAlreadyRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("twice", func(ctx context.Context) error { return backi.ErrNoWork }, quiet)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		msg := failure(t, func(ft backitest.TB) { backitest.RunN(ft, w, 1) })
		wantIn(t, msg, `backitest: RunN("twice", 1): Run returned an error (backi: worker "twice" is already running)`)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the first Run returned %v", err)
		}
	})
}

func TestRunNRejectsBadInput(t *testing.T) {
	w, calls := busy("input")
	for _, tc := range []struct {
		name string
		run  func(ft backitest.TB)
		want string
	}{
		{"nil worker", func(ft backitest.TB) { backitest.RunN(ft, nil, 1) }, "backitest: RunN(nil, 1): the worker is nil"},
		{"zero", func(ft backitest.TB) { backitest.RunN(ft, w, 0) }, `backitest: RunN("input", 0): n must be at least 1`},
		{"negative bound", func(ft backitest.TB) { backitest.RunN(ft, w, 1, backitest.Within(-time.Second)) },
			`backitest: RunN("input", 1): Within(-1s): need a positive duration`},
		{"nil option", func(ft backitest.TB) { backitest.RunN(ft, w, 1, nil) }, `backitest: RunN("input", 1): nil Option`},
		{"misconfigured", func(ft backitest.TB) { backitest.RunN(ft, backi.Loop("bad", nil), 1) },
			`backitest: RunN("bad", 1): Run returned an error (backi: worker "bad": the iteration function is nil)`},
		{"RunUntil nil worker", func(ft backitest.TB) { backitest.RunUntil(ft, nil, func(backi.Status) bool { return true }) },
			"backitest: RunUntil(nil): the worker is nil"},
		{"RunUntil nil condition", func(ft backitest.TB) { backitest.RunUntil(ft, w, nil) }, `backitest: RunUntil("input"): the condition is nil`},
		{"RunUntil zero bound", func(ft backitest.TB) {
			backitest.RunUntil(ft, w, func(backi.Status) bool { return true }, backitest.Within(0))
		}, `backitest: RunUntil("input"): Within(0s): need a positive duration`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantIn(t, failure(t, tc.run), tc.want)
		})
	}
	if calls.Load() != 0 {
		t.Errorf("the worker ran %d iterations", calls.Load())
	}
}

func TestHelpersReturnTheFailureWhenFatalfReturns(t *testing.T) {
	rt := &returningT{}
	err := backitest.RunN(rt, nil, 1)
	if err == nil || len(rt.msgs) != 1 || err.Error() != rt.msgs[0] {
		t.Errorf("RunN returned %v after reporting %q; want the failure it reported", err, rt.msgs)
	}
}

func TestRunUntilStopsWhenTheConditionHolds(t *testing.T) {
	inAndOutOfABubble(t, func(t *testing.T) {
		w, calls := busy("until")
		err := backitest.RunUntil(t, w, func(s backi.Status) bool { return s.Successes >= 5 })
		if err != nil {
			t.Fatalf("RunUntil: %v", err)
		}
		if s := w.Status(); calls.Load() != 5 || s.Iterations != 5 || s.State != backi.StateStopped {
			t.Errorf("%d calls, status %+v; want 5 iterations, stopped", calls.Load(), s)
		}
	})
}

// A failure is counted after the iteration's end is told: RunUntil sees it
// before the backoff wait, and stops there.
func TestRunUntilSeesFailuresBeforeTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("failing", func(ctx context.Context) error { return errors.New("down") }, quiet)
		start := time.Now()
		err := backitest.RunUntil(t, w, func(s backi.Status) bool { return s.Failures == 2 })
		if err != nil {
			t.Fatalf("RunUntil: %v", err)
		}
		if s := w.Status(); s.Iterations != 2 || s.Failures != 2 {
			t.Errorf("status %+v; want 2 iterations, 2 failures", s)
		}
		// One backoff wait of 500 ms, not the second.
		if took := time.Since(start); took < 500*time.Millisecond || took > 600*time.Millisecond {
			t.Errorf("took %v; want the first backoff wait", took)
		}
	})
}

func TestRunUntilAcceptsTheEndOfRun(t *testing.T) {
	calls := 0
	w := backi.Loop("finite", func(ctx context.Context) error {
		if calls++; calls == 3 {
			return backi.Stop(nil)
		}
		return nil
	}, quiet)
	err := backitest.RunUntil(t, w, func(s backi.Status) bool { return s.State == backi.StateStopped })
	if err != nil || calls != 3 {
		t.Errorf("RunUntil returned %v after %d calls; want nil after 3", err, calls)
	}
}

func TestRunUntilFailures(t *testing.T) {
	never := func(backi.Status) bool { return false }
	t.Run("Run returns first", func(t *testing.T) {
		w := backi.Loop("quits", func(ctx context.Context) error { return backi.Stop(nil) }, quiet)
		msg := failure(t, func(ft backitest.TB) { backitest.RunUntil(ft, w, never) })
		wantIn(t, msg, `backitest: RunUntil("quits"): Run returned nil while waiting for the condition to hold (checked after 1 iteration end and 2 changes of state)`)
	})
	t.Run("bound", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := backi.Loop("failing", func(ctx context.Context) error { return errors.New("down") }, quiet)
			msg := failure(t, func(ft backitest.TB) { backitest.RunUntil(ft, w, never, backitest.Within(time.Hour)) })
			wantIn(t, msg, `backitest: RunUntil("failing"): waited 1h0m0s for the condition to hold`, "state backing off", "last error: down")
		})
	})
	t.Run("panic", func(t *testing.T) {
		w, _ := busy("panics")
		msg := failure(t, func(ft backitest.TB) {
			backitest.RunUntil(ft, w, func(s backi.Status) bool {
				if s.Iterations == 2 {
					panic("cannot tell")
				}
				return false
			})
		})
		wantIn(t, msg, `backitest: RunUntil("panics"): the condition panicked: cannot tell`, "goroutine")
		if s := w.Status(); s.State != backi.StateStopped || s.Iterations != 2 {
			t.Errorf("status %+v; want the worker stopped after 2 iterations", s)
		}
	})
	// The condition runs on the caller's goroutine, so it may end it as
	// t.FailNow does; the worker is stopped and joined all the same.
	t.Run("Goexit", func(t *testing.T) {
		w, _ := busy("fatal")
		msg := failure(t, func(ft backitest.TB) {
			backitest.RunUntil(ft, w, func(s backi.Status) bool {
				if s.Iterations == 2 {
					ft.Fatalf("seen enough")
				}
				return false
			})
		})
		wantIn(t, msg, "seen enough")
		if s := w.Status(); s.State != backi.StateStopped || s.Iterations != 2 {
			t.Errorf("status %+v; want the worker stopped after 2 iterations", s)
		}
	})
}

// The stuck check tells its change of state from a goroutine of its own,
// while the loop runs its iteration: RunUntil hears it too.
func TestRunUntilStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("slow", func(ctx context.Context) error {
			select {
			case <-ctx.Done():
			case <-time.After(time.Hour):
			}
			return nil
		}, backi.WithStuckAfter(time.Second), quiet)
		start := time.Now()
		err := backitest.RunUntil(t, w, func(s backi.Status) bool { return s.State == backi.StateStuck })
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took <= time.Second || took > 1100*time.Millisecond {
			t.Errorf("RunUntil returned after %v; want the stuck check's first report past 1s", took)
		}
		if s := w.Status(); s.Iterations != 1 || s.State != backi.StateStopped {
			t.Errorf("status %+v; want 1 iteration, stopped", s)
		}
	})
}

// A schedule's waits pass at once in a bubble too; a long one needs a
// longer bound.
func TestRunNWithASchedule(t *testing.T) {
	began := time.Now()
	synctest.Test(t, func(t *testing.T) {
		var due []time.Time
		w := backi.Loop("hourly", func(ctx context.Context) error {
			d, _ := backi.ScheduledFor(ctx)
			due = append(due, d)
			return nil
		}, backi.WithSchedule(backi.Every(time.Hour)), quiet)
		start := time.Now()
		if err := backitest.RunN(t, w, 3, backitest.Within(4*time.Hour)); err != nil {
			t.Fatal(err)
		}
		want := []time.Time{start.Add(time.Hour), start.Add(2 * time.Hour), start.Add(3 * time.Hour)}
		if len(due) != 3 || !due[0].Equal(want[0]) || !due[1].Equal(want[1]) || !due[2].Equal(want[2]) {
			t.Errorf("runs due at %v; want %v", due, want)
		}
	})
	if took := time.Since(began); took > time.Second {
		t.Errorf("took %v of real time", took)
	}
}
