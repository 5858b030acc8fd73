package backi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestLoopRunsUntilContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var n int
		w := backi.Loop("count", func(ctx context.Context) error {
			n++
			if n == 100 {
				cancel()
			}
			return nil
		}, backi.WithLogger(quiet))
		if err := w.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
		st := w.Status()
		if n != 100 || st.Successes != 100 || st.Iterations != 100 || st.Failures != 0 {
			t.Fatalf("ran %d, status %+v; want 100 successes", n, st)
		}
		if st.State != backi.StateStopped {
			t.Fatalf("State = %v, want stopped", st.State)
		}
	})
}

func TestRunReturnsNilAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		w := backi.Loop("idle", func(ctx context.Context) error { return backi.ErrNoWork }, backi.WithLogger(quiet))
		if err := w.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil past the deadline", err)
		}
	})
}

func TestStopEndsTheWorker(t *testing.T) {
	errDone := errors.New("done")
	for _, tc := range []struct {
		name string
		ret  error
		want error
	}{
		{"Stop(nil)", backi.Stop(nil), nil},
		{"Stop(err)", backi.Stop(errDone), errDone},
		{"wrapped", fmt.Errorf("ending: %w", backi.Stop(errDone)), errDone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n int
				w := backi.Loop("stopper", func(ctx context.Context) error {
					n++
					if n == 3 {
						return tc.ret
					}
					return nil
				}, backi.WithLogger(quiet))
				err := w.Run(t.Context())
				if err != tc.want {
					t.Fatalf("Run = %v, want %v", err, tc.want)
				}
				if n != 3 {
					t.Fatalf("ran %d iterations, want 3", n)
				}
				want := backi.StateStopped
				if tc.want != nil {
					want = backi.StateFailed
				}
				if st := w.Status(); st.State != want || st.Iterations != 3 || st.Failures != 0 {
					t.Fatalf("status %+v, want state %v, 3 iterations, no failures", st, want)
				}
			})
		})
	}
}

func TestInvalidConfigurationNamesTheOption(t *testing.T) {
	fn := func(context.Context) error { return nil }
	for _, tc := range []struct {
		w    *backi.Worker
		want string
	}{
		{backi.Loop("", fn), "backi: worker name is empty"},
		{backi.Loop("w", nil), `backi: worker "w": the iteration function is nil`},
		{backi.Continuous("w", nil), `backi: worker "w": the build function is nil`},
		{backi.Loop("w", fn, nil), `backi: worker "w": nil Option`},
		{backi.Loop("w", fn, backi.WithConcurrency(0)), `backi: worker "w": WithConcurrency(0)`},
		{backi.Loop("w", fn, backi.WithIdle(0, time.Second)), "WithIdle(0s, 1s)"},
		{backi.Loop("w", fn, backi.WithIdle(2*time.Second, time.Second)), "WithIdle(2s, 1s)"},
		{backi.Loop("w", fn, backi.WithTimeout(0)), "WithTimeout(0s)"},
		{backi.Loop("w", fn, backi.WithTimeout(-time.Second)), "WithTimeout(-1s)"},
		{backi.Loop("w", fn, backi.WithCleanupTimeout(0)), "WithCleanupTimeout(0s)"},
		{backi.Loop("w", fn, backi.WithBackoff(nil)), "WithBackoff(nil)"},
		{backi.Loop("w", fn, backi.WithBackoff(backi.ExponentialBackoff(0, time.Second))), "WithBackoff: ExponentialBackoff(0s, 1s)"},
		{backi.Loop("w", fn, backi.WithBackoff(backi.ExponentialBackoff(time.Second, time.Millisecond))), "ExponentialBackoff(1s, 1ms)"},
		{backi.Loop("w", fn, backi.WithBackoff(backi.ConstantBackoff(-time.Second))), "ConstantBackoff(-1s)"},
		{backi.Loop("w", fn, backi.WithLogger(nil)), "WithLogger(nil)"},
		{backi.Loop("w", fn, backi.WithOnFailure(nil)), "WithOnFailure(nil)"},
		{backi.Loop("w", fn, backi.WithStuckAfter(0)), "WithStuckAfter(0s)"},
		{backi.Loop("w", fn, backi.WithObserver(nil)), "WithObserver(nil)"},
		{backi.Loop("w", fn, backi.WithEscalation(0, time.Minute, backi.StopWorker)), "WithEscalation(0, 1m0s, stop worker)"},
		{backi.Loop("w", fn, backi.WithEscalation(3, 0, backi.StopHost)), "WithEscalation(3, 0s, stop host)"},
		{backi.Loop("w", fn, backi.WithEscalation(3, time.Minute, backi.Escalation(7))), "Escalation(7)): unknown action"},
	} {
		err := tc.w.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run = %v, want an error containing %q", err, tc.want)
		}
		if st := tc.w.Status(); st.Iterations != 0 || st.State != backi.StateFailed {
			t.Errorf("%q: an invalid worker ran: %+v", tc.want, st)
		}
	}
}

func TestRunTwiceAtOnceIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("once", func(ctx context.Context) error { <-ctx.Done(); return nil }, backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		if err := w.Run(ctx); err == nil || !strings.Contains(err.Error(), `worker "once" is already running`) {
			t.Fatalf("second Run = %v, want already running", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestRunAgainAfterItReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errEnd := errors.New("end")
		runs := 0
		w := backi.Loop("again", func(ctx context.Context) error {
			runs++
			if runs%2 == 1 {
				return backi.Stop(errEnd) // odd runs fail the worker
			}
			<-ctx.Done() // even runs wait for their context
			return nil
		}, backi.WithLogger(quiet))
		for i := range 4 {
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error)
			go func() { done <- w.Run(ctx) }()
			synctest.Wait()
			cancel()
			err := <-done
			want, state := error(nil), backi.StateStopped
			if i%2 == 0 {
				want, state = errEnd, backi.StateFailed
			}
			if err != want {
				t.Fatalf("Run %d = %v, want %v", i+1, err, want)
			}
			if st := w.Status(); st.State != state || st.Iterations != uint64(i+1) {
				t.Fatalf("after Run %d: %v after %d iterations, want %v after %d", i+1, st.State, st.Iterations, state, i+1)
			}
		}
	})
}

func TestPanicIsAFailureNotACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		var n int
		w := backi.Loop("panicky", func(ctx context.Context) error {
			n++
			if n == 1 {
				panic("boom")
			}
			return backi.Stop(nil)
		}, backi.WithLogger(log))
		if err := w.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		st := w.Status()
		var pe *backi.PanicError
		if !errors.As(st.LastError, &pe) || pe.Value != "boom" {
			t.Fatalf("LastError = %#v, want a *PanicError with value boom", st.LastError)
		}
		if !strings.Contains(string(pe.Stack), "TestPanicIsAFailureNotACrash") {
			t.Fatalf("the stack does not show the panicking function:\n%s", pe.Stack)
		}
		if st.Failures != 1 || st.Iterations != 2 {
			t.Fatalf("status %+v, want two iterations, one failed", st)
		}
		fails := rec.find("iteration failed")
		if len(fails) != 1 || fails[0].Level != slog.LevelError {
			t.Fatalf("want one error record, got %+v", fails)
		}
		if !strings.Contains(fails[0].Attrs["stack"].String(), "TestPanicIsAFailureNotACrash") {
			t.Fatalf("the failure record carries no stack: %+v", fails[0].Attrs)
		}
		if got := fails[0].Attrs["worker"].String(); got != "panicky" {
			t.Fatalf("worker attribute = %q", got)
		}
	})
}

func TestPanicErrorUnwrapsAnErrorValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errInner := errors.New("inner")
		var got error
		w := backi.Loop("p", func(ctx context.Context) error { panic(errInner) },
			backi.WithLogger(quiet),
			backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
				got = f.Err
				return 0, backi.Stop(nil)
			}))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(got, errInner) {
			t.Fatalf("errors.Is(%v, inner) = false", got)
		}
	})
}

// gaps runs w until it has called its iteration n times and returns the
// time between consecutive calls. next is called with the call number.
func gaps(t *testing.T, n int, next func(i int) error, opts ...backi.Option) []time.Duration {
	t.Helper()
	var times []time.Time
	w := backi.Loop("timed", func(ctx context.Context) error {
		times = append(times, time.Now())
		if len(times) == n {
			return backi.Stop(nil)
		}
		return next(len(times))
	}, append([]backi.Option{backi.WithLogger(quiet)}, opts...)...)
	if err := w.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for i := 1; i < len(times); i++ {
		out = append(out, times[i].Sub(times[i-1]))
	}
	return out
}

var errFail = errors.New("fail")

// ranAgain runs a loop for each of tooks, with opt: its first iteration
// takes that long and returns err, and its second stops the loop. It returns
// when each loop's second iteration began, since the start, in the order of
// tooks.
func ranAgain(t *testing.T, err error, opt backi.Option, tooks []time.Duration) []time.Duration {
	t.Helper()
	start := time.Now()
	again := make([]time.Duration, len(tooks))
	var wg sync.WaitGroup
	for i, took := range tooks {
		runs := 0
		w := backi.Loop(fmt.Sprint("took", took), func(ctx context.Context) error {
			if runs++; runs == 2 {
				again[i] = time.Since(start)
				return backi.Stop(nil)
			}
			time.Sleep(took)
			return err
		}, backi.WithLogger(quiet), opt)
		wg.Go(func() {
			if err := w.Run(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	return again
}

func TestShortWaitsLastExactlyWhatWasAsked(t *testing.T) {
	// Two loops end their first iteration 3 ms and 7 ms in; with a 400 ms
	// wait they run again 400 ms later each, whether they failed or found no
	// work: a wait under half a second does not end on the process's ticks.
	for _, tc := range []struct {
		name string
		err  error
		opt  backi.Option
	}{
		{"failure", errFail, backi.WithBackoff(backi.ConstantBackoff(400 * time.Millisecond))},
		{"no work", backi.ErrNoWork, backi.WithIdle(400*time.Millisecond, 400*time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				again := ranAgain(t, tc.err, tc.opt, []time.Duration{3 * time.Millisecond, 7 * time.Millisecond})
				if want := []time.Duration{403 * time.Millisecond, 407 * time.Millisecond}; !slices.Equal(again, want) {
					t.Errorf("ran again %v after the start, want %v", again, want)
				}
			})
		})
	}
}

// tick is how often the process's clock ticks: an idle or backoff wait of
// half a second or more ends on the first tick at or after its end.
const tick = 50 * time.Millisecond

// lasted reports whether a wait that took got was one of want, moved to the
// process's next tick.
func lasted(got, want time.Duration) bool { return got >= want && got < want+tick }

// allLasted reports whether each of got lasted the same of want (see lasted).
func allLasted(got, want []time.Duration) bool {
	return slices.EqualFunc(got, want, lasted)
}

func TestLongWaitsOfManyLoopsEndTogether(t *testing.T) {
	// Twenty loops end their first iteration 0 to 19 ms in, and wait a
	// second, after a failure or after finding no work: each runs again a
	// second later, up to a tick late, and all of them at once, or on two
	// ticks, a tick apart.
	for _, tc := range []struct {
		name string
		err  error
		opt  backi.Option
	}{
		{"failure", errFail, backi.WithBackoff(backi.ConstantBackoff(time.Second))},
		{"no work", backi.ErrNoWork, backi.WithIdle(time.Second, time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var tooks []time.Duration
				for i := range 20 {
					tooks = append(tooks, time.Duration(i)*time.Millisecond)
				}
				again := ranAgain(t, tc.err, tc.opt, tooks)
				for i, at := range again {
					if d := at - tooks[i]; !lasted(d, time.Second) {
						t.Errorf("loop %d waited %v, want 1s up to a tick later", i, d)
					}
				}
				at := slices.Compact(slices.Sorted(slices.Values(again)))
				if len(at) > 2 || len(at) == 2 && at[1]-at[0] != tick {
					t.Fatalf("the loops ran again at %v after the start, want one instant, or two a tick apart", at)
				}
			})
		})
	}
}

func TestConstantBackoffWaitsExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		got := gaps(t, 5, func(int) error { return errFail }, backi.WithBackoff(backi.ConstantBackoff(400*time.Millisecond)))
		for _, g := range got {
			if g != 400*time.Millisecond {
				t.Fatalf("gaps %v, want 400ms each", got)
			}
		}
	})
}

func TestDefaultBackoffGrowsWithJitterAndResetsAfterSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Fail eight times, succeed once, fail again.
		got := gaps(t, 11, func(i int) error {
			if i == 9 {
				return nil
			}
			return errFail
		})
		// The backoff's bounds for an attempt, and the process's next tick.
		bounds := func(attempt int) (time.Duration, time.Duration) {
			d := backi.DefaultBackoffMin << (attempt - 1)
			d = min(d, backi.DefaultBackoffMax)
			return max(backi.DefaultBackoffMin, d/2), d + tick
		}
		for i, g := range got[:8] {
			lo, hi := bounds(i + 1)
			if g < lo || g >= hi {
				t.Fatalf("wait after failure %d = %v, want within [%v, %v]; all: %v", i+1, g, lo, hi, got)
			}
		}
		if got[8] != 0 {
			t.Fatalf("wait after a success = %v, want 0", got[8])
		}
		if lo, hi := bounds(1); got[9] < lo || got[9] >= hi {
			t.Fatalf("wait after the first failure following a success = %v, want within [%v, %v] (reset)", got[9], lo, hi)
		}
	})
}

func TestExponentialBackoffBounds(t *testing.T) {
	b := backi.ExponentialBackoff(100*time.Millisecond, 3*time.Second)
	for attempt := 1; attempt < 100; attempt++ {
		d := 3 * time.Second
		if attempt < 10 {
			d = min(100*time.Millisecond<<(attempt-1), d)
		}
		for range 50 {
			if w := b.Wait(attempt); w < max(100*time.Millisecond, d/2) || w > d {
				t.Fatalf("Wait(%d) = %v, want within [%v, %v]", attempt, w, max(100*time.Millisecond, d/2), d)
			}
		}
	}
	// Jitter: waits of a later attempt are not all the same.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[b.Wait(4)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 waits took only %d values; want jitter", len(seen))
	}
}

func TestIdleWaitGrowsResetsAndIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		got := gaps(t, 11, func(i int) error {
			if i == 8 {
				return nil // work found
			}
			return backi.ErrNoWork
		}, backi.WithLogger(log))
		want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 0, 1, 2}
		for i := range want {
			if want[i] *= time.Second; !lasted(got[i], want[i]) {
				t.Fatalf("idle waits %v, want %v, each up to a tick later", got, want)
			}
		}
		if errs := rec.atLeast(slog.LevelWarn); len(errs) != 0 {
			t.Fatalf("ErrNoWork was logged as a problem: %v", errs)
		}
	})
}

func TestWakeEndsTheIdleWaitAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := make(chan time.Time, 10)
		w := backi.Loop("poller", func(ctx context.Context) error {
			calls <- time.Now()
			return backi.ErrNoWork
		}, backi.WithLogger(quiet), backi.WithIdle(time.Hour, time.Hour))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		first := <-calls
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := w.Status(); st.State != backi.StateIdle || st.NoWork != 1 || st.Failures != 0 {
			t.Fatalf("status %+v, want idle after one ErrNoWork", st)
		}
		w.Wake()
		if second := <-calls; second.Sub(first) != 5*time.Second {
			t.Fatalf("woken after %v, want 5s", second.Sub(first))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestWakeDuringAnIterationSkipsTheNextIdleWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w *backi.Worker
		var times []time.Time
		w = backi.Loop("waker", func(ctx context.Context) error {
			times = append(times, time.Now())
			switch len(times) {
			case 1:
				w.Wake() // work arrived while we looked
			case 3:
				return backi.Stop(nil)
			}
			return backi.ErrNoWork
		}, backi.WithIdle(400*time.Millisecond, 400*time.Millisecond), backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := times[1].Sub(times[0]); d != 0 {
			t.Fatalf("the wait after a wake during the iteration lasted %v, want 0", d)
		}
		if d := times[2].Sub(times[1]); d != 400*time.Millisecond {
			t.Fatalf("the following wait lasted %v, want 400ms", d)
		}
	})
}

func TestWakeDoesNotShortenABackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		var w *backi.Worker
		w = backi.Loop("failing", func(ctx context.Context) error {
			times = append(times, time.Now())
			if len(times) == 2 {
				return backi.Stop(nil)
			}
			go func() { time.Sleep(100 * time.Millisecond); w.Wake() }()
			return errFail
		}, backi.WithBackoff(backi.ConstantBackoff(400*time.Millisecond)), backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := times[1].Sub(times[0]); d != 400*time.Millisecond {
			t.Fatalf("backoff lasted %v, want 400ms despite Wake", d)
		}
	})
}

func TestTimeoutIsAFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"returns ctx.Err()", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		{"ignores ctx and returns nil", func(ctx context.Context) error { time.Sleep(2 * time.Second); return nil }},
		{"returns ErrNoWork late", func(ctx context.Context) error { time.Sleep(2 * time.Second); return backi.ErrNoWork }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n int
				var failure backi.Failure
				w := backi.Loop("slow", func(ctx context.Context) error {
					n++
					if n == 2 {
						return backi.Stop(nil)
					}
					return tc.fn(ctx)
				}, backi.WithTimeout(time.Second), backi.WithLogger(quiet),
					backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
						failure = f
						return f.Wait, nil
					}))
				if err := w.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				if !errors.Is(failure.Err, context.DeadlineExceeded) || !strings.Contains(failure.Err.Error(), "exceeded its 1s timeout") {
					t.Fatalf("failure %v, want a timeout", failure.Err)
				}
				if st := w.Status(); st.Failures != 1 {
					t.Fatalf("status %+v, want one failure", st)
				}
			})
		})
	}
}

func TestTimeoutLeavesQuickIterationsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n int
		w := backi.Loop("quick", func(ctx context.Context) error {
			n++
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the iteration's context has no deadline")
			}
			time.Sleep(999 * time.Millisecond)
			if n == 3 {
				return backi.Stop(nil)
			}
			return nil
		}, backi.WithTimeout(time.Second), backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := w.Status(); st.Failures != 0 || st.Successes != 2 {
			t.Fatalf("status %+v, want 2 successes and no failure", st)
		}
	})
}

func TestShutdownIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("blocked", func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("query: %w", ctx.Err())
		}, backi.WithLogger(log))
		time.AfterFunc(3*time.Second, cancel)
		if err := w.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		st := w.Status()
		if st.Failures != 0 || st.LastError != nil || st.Iterations != 1 {
			t.Fatalf("status %+v, want one iteration and no failure", st)
		}
		if errs := rec.atLeast(slog.LevelWarn); len(errs) != 0 {
			t.Fatalf("shutdown was logged as a problem: %v", errs)
		}
		if len(rec.find("worker stopped")) != 1 || len(rec.find("worker started")) != 1 {
			t.Fatalf("want one start and one stop record, got %+v", rec.all())
		}
	})
}

func TestFailureIsLoggedWithCountAndWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		gaps(t, 3, func(int) error { return errFail }, backi.WithLogger(log), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		fails := rec.find("iteration failed")
		if len(fails) != 2 {
			t.Fatalf("got %d failure records, want 2", len(fails))
		}
		for i, f := range fails {
			if f.Level != slog.LevelError || f.Attrs["worker"].String() != "timed" ||
				f.Attrs["attempt"].Int64() != int64(i+1) || f.Attrs["wait"].Duration() != time.Second ||
				f.Attrs["err"].String() != "fail" {
				t.Fatalf("record %d = %+v", i, f)
			}
		}
	})
}

func TestFailureHookChoosesTheWaitAndCanStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errGiveUp := errors.New("give up")
		var seen []backi.Failure
		var times []time.Time
		w := backi.Loop("hooked", func(ctx context.Context) error {
			times = append(times, time.Now())
			return errFail
		}, backi.WithLogger(quiet), backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
			seen = append(seen, f)
			if f.Attempt == 3 {
				return 0, backi.Stop(errGiveUp)
			}
			return 200 * time.Millisecond, nil
		}))
		if err := w.Run(t.Context()); !errors.Is(err, errGiveUp) {
			t.Fatalf("Run = %v, want the hook's error", err)
		}
		if len(seen) != 3 {
			t.Fatalf("hook saw %d failures, want 3", len(seen))
		}
		for i, f := range seen {
			if f.Attempt != i+1 || f.Err != errFail || f.Worker != "hooked" || f.Logger == nil || f.Wait != backi.DefaultBackoffMin<<i && i == 0 {
				t.Fatalf("failure %d = %+v", i, f)
			}
		}
		if d := times[1].Sub(times[0]); d != 200*time.Millisecond {
			t.Fatalf("wait %v, want the hook's 200ms", d)
		}
	})
}

func TestFailureHookPanicFallsBackToBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		got := gaps(t, 2, func(int) error { return errFail }, backi.WithLogger(log),
			backi.WithBackoff(backi.ConstantBackoff(300*time.Millisecond)),
			backi.WithOnFailure(func(context.Context, backi.Failure) (time.Duration, error) { panic("hook") }))
		if got[0] != 300*time.Millisecond {
			t.Fatalf("wait %v, want the backoff's 300ms", got[0])
		}
		if len(rec.find("failure hook panicked")) != 1 {
			t.Fatalf("the hook's panic was not logged: %+v", rec.all())
		}
	})
}

// selfHandled handles its own failures, as a .NET iteration's OnException does.
type selfHandled struct{ calls *int }

func (s selfHandled) Run(ctx context.Context) error {
	*s.calls++
	if *s.calls == 3 {
		return backi.Stop(nil)
	}
	return errFail
}

func (s selfHandled) OnFailure(ctx context.Context, f backi.Failure) (time.Duration, error) {
	return 400 * time.Millisecond, nil
}

func TestIterationCarriesItsOwnFailureHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		var workerHook int
		start := time.Now()
		w := backi.Continuous("self", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			return selfHandled{&calls}, nil
		}, backi.WithLogger(quiet), backi.WithOnFailure(func(context.Context, backi.Failure) (time.Duration, error) {
			workerHook++
			return time.Hour, nil
		}))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if workerHook != 0 || time.Since(start) != 800*time.Millisecond {
			t.Fatalf("worker hook called %d times, took %v; want the iteration's hook (2 × 400ms)", workerHook, time.Since(start))
		}
	})
}

func TestEscalation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backoff time.Duration
		action  backi.Escalation
		want    backi.Escalation // KeepGoing: no escalation
	}{
		{"stop worker when failures are close", 10 * time.Second, backi.StopWorker, backi.StopWorker},
		{"stop host when failures are close", 10 * time.Second, backi.StopHost, backi.StopHost},
		{"keep going when failures are spread out", 40 * time.Second, backi.StopWorker, backi.KeepGoing},
		{"keep going by policy", time.Second, backi.KeepGoing, backi.KeepGoing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n int
				w := backi.Loop("esc", func(ctx context.Context) error {
					n++
					if n == 6 {
						return backi.Stop(nil)
					}
					return errFail
				}, backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(tc.backoff)),
					backi.WithEscalation(3, time.Minute, tc.action))
				err := w.Run(t.Context())
				var esc *backi.EscalationError
				if tc.want == backi.KeepGoing {
					if err != nil || n != 6 {
						t.Fatalf("Run = %v after %d iterations, want nil after 6", err, n)
					}
					return
				}
				if !errors.As(err, &esc) || esc.Action != tc.want || esc.Failures != 3 || !errors.Is(err, errFail) {
					t.Fatalf("Run = %v, want an EscalationError %v wrapping the last failure", err, tc.want)
				}
				if n != 3 {
					t.Fatalf("escalated after %d failures, want 3", n)
				}
			})
		})
	}
}

func TestConcurrencyRunsLoopsInParallelWithTheirOwnScopes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		inFlight, most := 0, 0
		scopes := map[*backi.Scope]bool{}
		release := make(chan struct{})
		w := backi.Continuous("par", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			mu.Lock()
			scopes[s] = true
			mu.Unlock()
			return backi.IterationFunc(func(ctx context.Context) error {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				mu.Unlock()
				select {
				case <-release:
				case <-ctx.Done():
				}
				mu.Lock()
				inFlight--
				mu.Unlock()
				return nil
			}), nil
		}, backi.WithConcurrency(3), backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		st := w.Status()
		if st.Concurrency != 3 || st.State != backi.StateRunning || st.InFlightSince.IsZero() {
			t.Fatalf("status %+v, want 3 loops running", st)
		}
		cancel() // before the release, so that no loop begins another turn, with a scope of its own
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if most != 3 || len(scopes) != 3 {
			t.Fatalf("%d iterations ran at once with %d scopes, want 3 and 3", most, len(scopes))
		}
	})
}

func TestConcurrentStopEndsEveryLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		w := backi.Loop("par", func(ctx context.Context) error {
			if n.Add(1) == 10 {
				return backi.Stop(errFail)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			return nil
		}, backi.WithConcurrency(4), backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != errFail {
			t.Fatalf("Run = %v, want the stop error", err)
		}
	})
}

func TestStatusNeverWaitsForTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		block := make(chan struct{})
		started := time.Now()
		w := backi.Loop("stuck", func(ctx context.Context) error { <-block; return errFail },
			backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(time.Minute)))
		if st := w.Status(); st.State != backi.StateNew || st.Name != "stuck" {
			t.Fatalf("status before Run %+v", st)
		}
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(time.Hour)
		st := w.Status() // the iteration is blocked: Status must still answer
		if st.State != backi.StateRunning || !st.InFlightSince.Equal(started) {
			t.Fatalf("status %+v, want running since %v", st, started)
		}
		close(block)
		synctest.Wait()
		st = w.Status()
		if st.State != backi.StateBackingOff || st.Failures != 1 || st.ConsecutiveFailures != 1 ||
			!st.LastFailure.Equal(started.Add(time.Hour)) || st.LastError != errFail || !st.InFlightSince.IsZero() {
			t.Fatalf("status %+v, want backing off after one failure", st)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestIdleAndBackingOffWorkersDoNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		idle := backi.Loop("idle", func(ctx context.Context) error { return backi.ErrNoWork }, backi.WithLogger(quiet))
		failing := backi.Loop("failing", func(ctx context.Context) error { return errFail }, backi.WithLogger(quiet))
		var wg sync.WaitGroup
		wg.Go(func() { idle.Run(ctx) })
		wg.Go(func() { failing.Run(ctx) })
		wg.Wait()
		// One hour with waits capped at 30s: 1+2+4+8+16 then 30s each.
		if n := idle.Status().Iterations; n < 100 || n > 125 {
			t.Fatalf("an idle worker ran %d iterations in an hour, want about 120", n)
		}
		if n := failing.Status().Iterations; n < 100 || n > 250 {
			t.Fatalf("a failing worker ran %d iterations in an hour, want 120 to 240", n)
		}
	})
}

func TestWakeReachesEveryLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("pollers", func(ctx context.Context) error { return backi.ErrNoWork },
			backi.WithConcurrency(3), backi.WithIdle(time.Hour, time.Hour), backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		if st := w.Status(); st.NoWork != 3 || st.State != backi.StateIdle {
			t.Fatalf("status %+v, want 3 idle loops", st)
		}
		w.Wake()
		synctest.Wait()
		if st := w.Status(); st.NoWork != 6 {
			t.Fatalf("after Wake %d iterations, want every loop to have run again (6)", st.NoWork)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// WakeOne wakes one idle loop at a time, each in turn.
func TestWakeOneWakesOneIdleLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		turns := map[int]int{}
		w := backi.Loop("consumer", func(ctx context.Context) error {
			return backi.ErrNoWork
		}, backi.WithConcurrency(3), backi.WithIdle(time.Hour, time.Hour), backi.WithLogger(quiet),
			backi.WithObserver(observeEnds(func(e backi.IterationEvent) { mu.Lock(); turns[e.Loop]++; mu.Unlock() })))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		for i := range 3 {
			w.WakeOne()
			synctest.Wait()
			mu.Lock()
			total := turns[0] + turns[1] + turns[2]
			mu.Unlock()
			if total != 3+i+1 {
				t.Fatalf("after %d WakeOne: %d turns, want %d", i+1, total, 3+i+1)
			}
		}
		mu.Lock()
		if turns[0] != 2 || turns[1] != 2 || turns[2] != 2 {
			t.Fatalf("turns by loop %v: each loop should have been woken once", turns)
		}
		mu.Unlock()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// observeEnds is an observer that calls end for each iteration's end.
type observeEnds func(backi.IterationEvent)

func (f observeEnds) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}
func (f observeEnds) IterationEnd(_ context.Context, e backi.IterationEvent, _ backi.IterationResult) {
	f(e)
}
func (f observeEnds) StateChange(string, int, backi.State, backi.State) {}
