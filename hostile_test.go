package backi_test

// The hostile tests pin what a worker does when what it calls misbehaves:
// callbacks that panic, waits that are negative, schedules that do not move,
// times past 2262, misuse. Every callback is contained, and no loop runs
// without a wait. A case whose failure would crash or hang the test binary
// runs in a child process (see childtest.Run); the others stop themselves (see
// spinGuard) so that a loop that does not wait fails the test instead of
// hanging it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/childtest"
)

var (
	errHostile = errors.New("hostile failure")
	errSpin    = errors.New("hostile: 100 calls at one instant of the clock: a loop without a wait")
)

// spinGuard tells a loop that never waits: with synctest's clock, such a loop
// would run forever at one instant. Not safe for concurrent use.
type spinGuard struct {
	last time.Time
	same int
}

// spinning notes a call and reports whether the last 100 calls all came at
// the same instant.
func (g *spinGuard) spinning() bool {
	now := time.Now()
	if now.Equal(g.last) {
		g.same++
	} else {
		g.last, g.same = now, 0
	}
	return g.same >= 100
}

// timeLog records when things happen. It is safe for concurrent use.
type timeLog struct {
	mu sync.Mutex
	ts []time.Time
}

func (l *timeLog) add() {
	l.mu.Lock()
	l.ts = append(l.ts, time.Now())
	l.mu.Unlock()
}

func (l *timeLog) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.ts...)
}

// spaced fails t unless each time in ts is strictly after the one before:
// what they time was separated by a wait.
func spaced(t *testing.T, what string, ts []time.Time) {
	t.Helper()
	for i := 1; i < len(ts); i++ {
		if !ts[i].After(ts[i-1]) {
			t.Errorf("%s %d and %d both at %v: no wait between them", what, i, i+1, ts[i].Format(time.StampMicro))
			return
		}
	}
}

// hostileRun is a worker's Run in progress on a goroutine of its own.
type hostileRun struct {
	cancel context.CancelFunc
	done   chan error
	ended  bool
	err    error
}

// runWorker starts w.Run on a goroutine of its own. A panic that escapes Run
// becomes Run's result. Unless the test stops it, Run is stopped when the
// test ends.
func runWorker(t *testing.T, w *backi.Worker) *hostileRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &hostileRun{cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				r.done <- fmt.Errorf("a panic escaped Run: %v", v)
			}
		}()
		r.done <- w.Run(ctx)
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run's context and returns Run's result, or an error if that
// does not arrive within an hour of the bubble's clock.
func (r *hostileRun) stop() error {
	r.cancel()
	if !r.ended {
		select {
		case r.err = <-r.done:
		case <-time.After(time.Hour):
			r.err = errors.New("Run did not return within an hour of its context's end")
		}
		r.ended = true
	}
	return r.err
}

// returned reports, without waiting, whether Run has returned, and with what.
func (r *hostileRun) returned() (error, bool) {
	if !r.ended {
		select {
		case r.err = <-r.done:
			r.ended = true
		default:
		}
	}
	return r.err, r.ended
}

// loggedError reports whether rec holds an Error record of the worker named
// worker whose message contains about (in any case).
func loggedError(rec *recorder, worker, about string) bool {
	for _, r := range rec.all() {
		if r.Level == slog.LevelError && strings.Contains(strings.ToLower(r.Msg), about) &&
			r.Attrs["worker"].Kind() == slog.KindString && r.Attrs["worker"].String() == worker {
			return true
		}
	}
	return false
}

// panicObserver panics in one of its methods: method names it, and
// "StuckStateChange" is StateChange to StateStuck only.
type panicObserver struct{ method string }

func (o panicObserver) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	if o.method == "IterationStart" {
		panic("hostile observer: IterationStart")
	}
	return ctx
}

func (o panicObserver) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {
	if o.method == "IterationEnd" {
		panic("hostile observer: IterationEnd")
	}
}

func (o panicObserver) StateChange(_ string, _ int, _, to backi.State) {
	if o.method == "StateChange" || o.method == "StuckStateChange" && to == backi.StateStuck {
		panic("hostile observer: StateChange")
	}
}

// A1: an observer that panics, on the loop's goroutine or on the stuck
// watcher's, neither crashes the process nor stops the worker; the panic is
// logged at Error, with the worker's name.
func TestHostileObserverPanicIsContained(t *testing.T) {
	for _, method := range []string{"IterationStart", "IterationEnd", "StateChange", "StuckStateChange"} {
		t.Run(method, func(t *testing.T) {
			childtest.Run(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					log, rec := newRecorder()
					var n atomic.Int64
					w := backi.Loop("watched", func(ctx context.Context) error {
						if n.Add(1) == 1 { // long enough to be reported stuck
							select {
							case <-ctx.Done():
							case <-time.After(5 * time.Second):
							}
							return nil
						}
						return backi.ErrNoWork
					}, backi.WithLogger(log), backi.WithObserver(panicObserver{method}),
						backi.WithIdle(time.Second, time.Second), backi.WithStuckAfter(time.Second))
					r := runWorker(t, w)
					time.Sleep(time.Minute)
					if err := r.stop(); err != nil {
						t.Fatalf("Run = %v, want nil at the context's end", err)
					}
					if got := n.Load(); got < 10 {
						t.Errorf("%d iterations in a minute, want the worker to go on (at least 10)", got)
					}
					if !loggedError(rec, "watched", "observer") {
						t.Errorf("no Error record about the observer with the worker's name; records: %+v", rec.all())
					}
				})
			})
		})
	}
}

// panicOnceSchedule panics on its first call, then is s.
type panicOnceSchedule struct {
	calls atomic.Int64
	s     backi.Schedule
}

func (p *panicOnceSchedule) Next(after time.Time) time.Time {
	if p.calls.Add(1) == 1 {
		panic("hostile schedule")
	}
	return p.s.Next(after)
}

// A2: a Schedule whose Next panics is a failure retried after the backoff.
func TestHostileSchedulePanicIsRetried(t *testing.T) {
	childtest.Run(t, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			log, rec := newRecorder()
			var runs atomic.Int64
			w := backi.Loop("periodic", func(ctx context.Context) error { runs.Add(1); return nil },
				backi.WithSchedule(&panicOnceSchedule{s: backi.Every(time.Minute)}),
				backi.WithBackoff(backi.ConstantBackoff(10*time.Second)), backi.WithLogger(log))
			r := runWorker(t, w)
			synctest.Wait()
			if st := w.Status(); st.State != backi.StateBackingOff {
				t.Errorf("after the schedule panicked: state %v, want backing off", st.State)
			}
			if !loggedError(rec, "periodic", "") {
				t.Errorf("the schedule's panic was not logged at Error; records: %+v", rec.all())
			}
			time.Sleep(3*time.Minute + time.Second)
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v, want nil at the context's end", err)
			}
			if got := runs.Load(); got < 2 {
				t.Errorf("%d runs in 3 minutes of Every(time.Minute) after the retry, want at least 2", got)
			}
		})
	})
}

// panicBackoff panics on every call.
type panicBackoff struct{}

func (panicBackoff) Wait(int) time.Duration { panic("hostile backoff") }

// A3: a Backoff whose Wait panics does not crash the worker: the failure is
// counted, and the loop still waits before the next turn.
func TestHostileBackoffPanicStillWaits(t *testing.T) {
	childtest.Run(t, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var starts timeLog
			var guard spinGuard
			w := backi.Loop("failing", func(ctx context.Context) error {
				starts.add()
				if guard.spinning() {
					return backi.Stop(errSpin)
				}
				return errHostile
			}, backi.WithBackoff(panicBackoff{}), backi.WithLogger(quiet))
			r := runWorker(t, w)
			time.Sleep(10 * time.Second)
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v, want nil at the context's end", err)
			}
			ts := starts.times()
			spaced(t, "failures", ts)
			// The last turn may have ended as the worker stopped: not a failure.
			if st := w.Status(); st.Failures == 0 || st.Failures+1 < uint64(len(ts)) {
				t.Errorf("%d failures counted for %d failed turns", st.Failures, len(ts))
			}
		})
	})
}

// hostileElector grants a term at once on every Campaign, and misbehaves as
// mode says: "Campaign", "Done", "Token" or "Resign" panics in that method;
// "Lost" grants terms already lost. After 100 campaigns at one instant, it
// stops granting, so that a worker that does not wait cannot hang the test.
type hostileElector struct {
	mode      string
	mu        sync.Mutex
	campaigns []time.Time
	resigns   int
	guard     spinGuard
}

func (e *hostileElector) Campaign(ctx context.Context) (backi.Term, error) {
	e.mu.Lock()
	e.campaigns = append(e.campaigns, time.Now())
	spinning := e.guard.spinning()
	e.mu.Unlock()
	if spinning {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if e.mode == "Campaign" {
		panic("hostile elector: Campaign")
	}
	done := make(chan struct{})
	if e.mode == "Lost" {
		close(done)
	}
	return &hostileTerm{e: e, done: done}, nil
}

func (e *hostileElector) calls() ([]time.Time, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.campaigns...), e.resigns
}

type hostileTerm struct {
	e    *hostileElector
	done chan struct{}
}

func (t *hostileTerm) Done() <-chan struct{} {
	if t.e.mode == "Done" {
		panic("hostile term: Done")
	}
	return t.done
}

func (t *hostileTerm) Token() uint64 {
	if t.e.mode == "Token" {
		panic("hostile term: Token")
	}
	return 1
}

func (t *hostileTerm) Resign(context.Context) error {
	t.e.mu.Lock()
	t.e.resigns++
	t.e.mu.Unlock()
	if t.e.mode == "Resign" {
		panic("hostile term: Resign")
	}
	return nil
}

// A4: an Elector or Term that panics does not crash the worker; a campaign
// that panicked is retried after a wait.
func TestHostileElectorPanicIsContained(t *testing.T) {
	for _, mode := range []string{"Campaign", "Done", "Token", "Resign"} {
		t.Run(mode, func(t *testing.T) {
			childtest.Run(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					e := &hostileElector{mode: mode}
					w := backi.Loop("singleton", func(ctx context.Context) error { <-ctx.Done(); return nil },
						backi.WithLeader(e), backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithLogger(quiet))
					r := runWorker(t, w)
					time.Sleep(10 * time.Second)
					if err := r.stop(); err != nil {
						t.Fatalf("Run = %v, want nil at the context's end", err)
					}
					campaigns, resigns := e.calls()
					if len(campaigns) > 20 {
						t.Errorf("%d campaigns in 10s with a 1s backoff, want at most 20", len(campaigns))
					}
					switch mode {
					case "Campaign":
						if len(campaigns) < 2 {
							t.Errorf("%d campaigns in 10s with a 1s backoff: the panicked campaign was not retried", len(campaigns))
						}
						spaced(t, "campaigns", campaigns)
					case "Resign":
						if resigns != 1 {
							t.Errorf("Resign called %d times, want once as the worker stops", resigns)
						}
					}
				})
			})
		})
	}
}

// nilDerefError's Error dereferences its receiver: a nil *nilDerefError
// returned as an error panics when asked for its text.
type nilDerefError struct{ msg string }

func (e *nilDerefError) Error() string { return "hostile: " + e.msg }

// A5: an error whose Error method panics is still a failure: counted,
// logged, given to the failure hook, and nothing crashes.
func TestHostileErrorMethodPanicIsAFailure(t *testing.T) {
	childtest.Run(t, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			log, rec := newRecorder()
			var n atomic.Int64
			var hookMu sync.Mutex
			var hooked []error
			w := backi.Loop("fragile", func(ctx context.Context) error {
				if n.Add(1) == 1 {
					var err *nilDerefError
					return err
				}
				return backi.ErrNoWork
			}, backi.WithLogger(log), backi.WithOnFailure(func(_ context.Context, f backi.Failure) (time.Duration, error) {
				hookMu.Lock()
				hooked = append(hooked, f.Err)
				hookMu.Unlock()
				return f.Wait, nil
			}))
			r := runWorker(t, w)
			time.Sleep(10 * time.Second)
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v, want nil at the context's end", err)
			}
			if st := w.Status(); st.Failures != 1 {
				t.Errorf("Failures = %d, want 1", st.Failures)
			}
			hookMu.Lock()
			defer hookMu.Unlock()
			var target *nilDerefError
			if len(hooked) != 1 || !errors.As(hooked[0], &target) {
				t.Errorf("the failure hook got %d errors (want 1, a *nilDerefError)", len(hooked))
			}
			if !loggedError(rec, "fragile", "") {
				t.Errorf("the failure was not logged at Error with the worker's name")
			}
		})
	})
}

// panicHandler is a slog.Handler that panics in one of its methods.
type panicHandler struct{ method string }

func (h panicHandler) Enabled(context.Context, slog.Level) bool {
	if h.method == "Enabled" {
		panic("hostile handler: Enabled")
	}
	return true
}

func (h panicHandler) Handle(context.Context, slog.Record) error {
	if h.method == "Handle" {
		panic("hostile handler: Handle")
	}
	return nil
}

func (h panicHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicHandler) WithGroup(string) slog.Handler      { return h }

// A6: a log handler that panics does not stop the worker, nor keep it from
// being run again.
func TestHostileLogHandlerPanicIsContained(t *testing.T) {
	for _, method := range []string{"Handle", "Enabled"} {
		t.Run(method, func(t *testing.T) {
			childtest.Run(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var n atomic.Int64
					w := backi.Loop("logged", func(ctx context.Context) error {
						switch k := n.Add(1); {
						case k == 1: // long enough to be reported stuck
							select {
							case <-ctx.Done():
							case <-time.After(3 * time.Second):
							}
							return nil
						case k%3 == 0:
							return errHostile
						case k%3 == 1:
							return backi.ErrNoWork
						}
						return nil
					}, backi.WithLogger(slog.New(panicHandler{method})), backi.WithBackoff(backi.ConstantBackoff(time.Second)),
						backi.WithIdle(time.Second, time.Second), backi.WithStuckAfter(time.Second))
					r := runWorker(t, w)
					time.Sleep(10 * time.Second)
					if err := r.stop(); err != nil {
						t.Fatalf("Run = %v, want nil at the context's end", err)
					}
					if st := w.Status(); st.Successes == 0 || st.Failures == 0 || st.NoWork == 0 {
						t.Errorf("status %+v: want successes, failures and idle turns", st)
					}
					r = runWorker(t, w)
					time.Sleep(time.Second)
					if err := r.stop(); err != nil {
						t.Fatalf("the second Run = %v, want nil at the context's end", err)
					}
				})
			})
		})
	}
}

// A8: a panic whose value wraps ErrNoWork is a failure, not an idle turn.
func TestHostileWrappedNoWorkPanicIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n int
		w := backi.Loop("panicky", func(ctx context.Context) error {
			if n++; n == 1 {
				panic(fmt.Errorf("x: %w", backi.ErrNoWork))
			}
			return backi.Stop(nil)
		}, backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Fatalf("Run = %v, want nil after Stop(nil)", err)
		}
		if st := w.Status(); st.Failures != 1 || st.NoWork != 0 {
			t.Fatalf("Failures = %d, NoWork = %d; want the panic counted as 1 failure, 0 idle turns", st.Failures, st.NoWork)
		}
	})
}

// negativeBackoff waits a negative duration.
type negativeBackoff struct{}

func (negativeBackoff) Wait(int) time.Duration { return -time.Second }

// B1, B2: a negative wait, from the Backoff or from the failure hook, still
// spaces failures: over 1s of the fake clock, at most one a millisecond.
func TestHostileNegativeWaitStillWaits(t *testing.T) {
	for _, from := range []string{"Backoff", "Hook"} {
		t.Run(from, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var starts timeLog
				var guard spinGuard
				opt := backi.WithBackoff(negativeBackoff{})
				if from == "Hook" {
					opt = backi.WithOnFailure(func(context.Context, backi.Failure) (time.Duration, error) { return -time.Second, nil })
				}
				w := backi.Loop("failing", func(ctx context.Context) error {
					starts.add()
					if guard.spinning() {
						return backi.Stop(errSpin)
					}
					return errHostile
				}, opt, backi.WithLogger(quiet))
				r := runWorker(t, w)
				time.Sleep(time.Second)
				if err := r.stop(); err != nil {
					t.Fatalf("Run = %v, want nil at the context's end", err)
				}
				ts := starts.times()
				spaced(t, "failures", ts)
				if len(ts) > 1001 {
					t.Errorf("%d failures in 1s, want at most one a millisecond", len(ts))
				}
			})
		})
	}
}

// B3: an Elector whose every term is lost at once makes the worker campaign
// after a backoff wait each time, and run no iteration hot.
func TestHostileLostTermCampaignsAfterAWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &hostileElector{mode: "Lost"}
		var iterations atomic.Int64
		w := backi.Loop("singleton", func(ctx context.Context) error { iterations.Add(1); <-ctx.Done(); return nil },
			backi.WithLeader(e), backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(10 * time.Second)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v, want nil at the context's end", err)
		}
		campaigns, _ := e.calls()
		spaced(t, "campaigns", campaigns)
		if len(campaigns) > 20 {
			t.Errorf("%d campaigns in 10s with a 1s backoff, want at most 20", len(campaigns))
		}
		if n := iterations.Load(); n > int64(len(campaigns)) {
			t.Errorf("%d iterations for %d lost terms", n, len(campaigns))
		}
	})
}

// fixedSchedule returns the same time, whatever it is asked.
type fixedSchedule time.Time

func (s fixedSchedule) Next(time.Time) time.Time { return time.Time(s) }

// standingSchedule returns the time it is given: it never moves forward.
type standingSchedule struct{}

func (standingSchedule) Next(after time.Time) time.Time { return after }

// mentions reports whether the record's message or one of its attributes
// mentions s (in any case).
func mentions(r record, s string) bool {
	if strings.Contains(strings.ToLower(r.Msg), s) {
		return true
	}
	for k, v := range r.Attrs {
		if strings.Contains(strings.ToLower(k), s) || strings.Contains(strings.ToLower(v.String()), s) {
			return true
		}
	}
	return false
}

// B4: a Schedule whose Next is not after its argument still spaces runs by a
// wait, and is reported once at Warn.
func TestHostileStuckScheduleStillWaits(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    backi.Schedule
	}{
		{"Standing", standingSchedule{}},
		{"Past", fixedSchedule(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, rec := newRecorder()
				var starts timeLog
				var guard spinGuard
				w := backi.Loop("periodic", func(ctx context.Context) error {
					starts.add()
					if guard.spinning() {
						return backi.Stop(errSpin)
					}
					return nil
				}, backi.WithSchedule(tc.s), backi.WithLogger(log))
				r := runWorker(t, w)
				time.Sleep(time.Second)
				if err := r.stop(); err != nil {
					t.Fatalf("Run = %v, want nil at the context's end", err)
				}
				ts := starts.times()
				spaced(t, "runs", ts)
				if len(ts) > 1001 {
					t.Errorf("%d runs in 1s, want at most one a millisecond", len(ts))
				}
				var warns []record
				for _, r := range rec.all() {
					if r.Level == slog.LevelWarn && mentions(r, "schedule") {
						warns = append(warns, r)
					}
				}
				if len(warns) != 1 {
					t.Errorf("%d Warn records about the schedule over %d runs, want 1: %+v", len(warns), len(ts), warns)
				}
			})
		})
	}
}

// B5: ExponentialBackoff with a huge max never overflows: every wait is at
// least min, and none is less than half the longest before it (the jitter).
func TestHostileExponentialBackoffDoesNotOverflow(t *testing.T) {
	for _, ceiling := range []time.Duration{math.MaxInt64, 1 << 62, math.MaxInt64 / 3} {
		b := backi.ExponentialBackoff(time.Millisecond, ceiling)
		for range 20 { // the jitter is random: try it a few times
			var longest time.Duration
			for n := 1; n <= 200; n++ {
				d := b.Wait(n)
				if d < time.Millisecond {
					t.Fatalf("ExponentialBackoff(1ms, %d).Wait(%d) = %v, want at least 1ms", ceiling, n, d)
				}
				if d < longest/2 {
					t.Fatalf("ExponentialBackoff(1ms, %d).Wait(%d) = %v, less than half of an earlier %v", ceiling, n, d, longest)
				}
				longest = max(longest, d)
			}
		}
	}
}

// farSchedule runs once, at its time.
type farSchedule time.Time

func (s farSchedule) Next(after time.Time) time.Time {
	if after.Before(time.Time(s)) {
		return time.Time(s)
	}
	return time.Time{}
}

// C1: a run due after 2262, past what UnixNano holds, shows as itself in
// Status.
func TestHostileNextRunAfter2262(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		due := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
		w := backi.Loop("far", func(context.Context) error { return nil },
			backi.WithSchedule(farSchedule(due)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		synctest.Wait()
		if got := w.Status().NextRun; !got.Equal(due) {
			t.Errorf("NextRun = %v, want %v", got, due)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v, want nil at the context's end", err)
		}
	})
}

// C2: a schedule much denser than its runs runs each time for the latest
// tick, and does not fall behind run after run.
func TestHostileDenseScheduleRunsForTheLatestTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type run struct{ start, due time.Time }
		var mu sync.Mutex
		var runs []run
		w := backi.Loop("dense", func(ctx context.Context) error {
			due, _ := backi.ScheduledFor(ctx)
			mu.Lock()
			runs = append(runs, run{time.Now(), due})
			mu.Unlock()
			select { // one minute of work, for a run due every millisecond
			case <-ctx.Done():
			case <-time.After(time.Minute):
			}
			return nil
		}, backi.WithSchedule(backi.Every(time.Millisecond)), backi.WithLogger(quiet))
		r := runWorker(t, w)
		time.Sleep(5*time.Minute + 30*time.Second)
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v, want nil at the context's end", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(runs) < 5 {
			t.Fatalf("%d runs in 5m30s of one-minute runs, want at least 5", len(runs))
		}
		for i, r := range runs {
			if lag := r.start.Sub(r.due); lag < 0 || lag > time.Millisecond {
				t.Errorf("run %d started %v after the tick it is for (ScheduledFor = %v), want at most 1ms",
					i+1, lag, r.due.Format(time.StampMilli))
			}
		}
	})
}

// D1: a Worker not made by Loop or Continuous is an error, not a worker that
// runs nothing.
func TestHostileZeroWorkerIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := new(backi.Worker)
		r := runWorker(t, w)
		time.Sleep(time.Minute)
		err, ok := r.returned()
		if !ok {
			t.Fatalf("new(backi.Worker).Run has not returned after a minute")
		}
		if err == nil || !strings.Contains(err.Error(), "Loop") && !strings.Contains(err.Error(), "Continuous") {
			t.Fatalf("new(backi.Worker).Run = %v, want an error pointing at Loop or Continuous", err)
		}
	})
}

// D2: a cleanup that ignores its context does not hold the worker past the
// cleanup timeout: the turn fails, with an error about the cleanup's timeout,
// a Warn record says so, and the worker goes on.
func TestHostileCleanupIgnoringItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		release := make(chan struct{})
		var turns atomic.Int64
		w := backi.Continuous("leaky", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			if turns.Add(1) == 1 {
				s.Defer(func(context.Context) error { <-release; return nil }) // deaf to its context
			}
			return backi.IterationFunc(func(ctx context.Context) error { return backi.ErrNoWork }), nil
		}, backi.WithLogger(log), backi.WithCleanupTimeout(time.Second),
			backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithIdle(time.Second, time.Second))
		r := runWorker(t, w)
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free) // before runWorker's: Run may wait for the cleanup
		time.Sleep(5 * time.Second)
		st := w.Status()
		if st.Failures != 1 {
			t.Errorf("Failures = %d 5s after a turn whose cleanup outlived its 1s timeout, want 1", st.Failures)
		}
		if e := st.LastError; e == nil || !strings.Contains(e.Error(), "cleanup") ||
			!strings.Contains(e.Error(), "timeout") && !strings.Contains(e.Error(), "timed out") {
			t.Errorf("LastError = %v, want one about the cleanup's timeout", e)
		}
		if n := turns.Load(); n < 2 {
			t.Errorf("%d turns in 5s, want the worker to go on past the stuck cleanup", n)
		}
		var warned bool
		for _, r := range rec.all() {
			warned = warned || r.Level == slog.LevelWarn
		}
		if !warned {
			t.Errorf("no Warn record about the cleanup; records: %+v", rec.all())
		}
		free()
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v, want nil at the context's end", err)
		}
	})
}

// stateLog records an observer's StateChange events, per loop.
type stateLog struct {
	mu    sync.Mutex
	loops map[int][][2]backi.State
}

func (o *stateLog) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}

func (o *stateLog) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {}

func (o *stateLog) StateChange(_ string, loop int, from, to backi.State) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.loops == nil {
		o.loops = map[int][][2]backi.State{}
	}
	o.loops[loop] = append(o.loops[loop], [2]backi.State{from, to})
}

// check fails t unless each loop's events chain from StateNew to StateStopped,
// each from the state the one before went to, and unless some loop went from
// stuck back to running.
func (o *stateLog) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	var unstuck bool
loops:
	for loop, evs := range o.loops {
		prev := backi.StateNew
		for i, ev := range evs {
			if ev[0] != prev {
				t.Errorf("loop %d, event %d: %v→%v after a change to %v; events: %v", loop, i+1, ev[0], ev[1], prev, evs)
				continue loops
			}
			prev = ev[1]
			unstuck = unstuck || ev == [2]backi.State{backi.StateStuck, backi.StateRunning}
		}
		if prev != backi.StateStopped {
			t.Errorf("loop %d ends in %v, want stopped; events: %v", loop, prev, evs)
		}
	}
	if !unstuck {
		t.Errorf("no loop went from stuck back to running; events: %v", o.loops)
	}
}

// E (its part that needs no new name): an observer hears each loop's states
// as one consistent machine, stuck included, with or without leadership.
func TestHostileStateChangeStreamIsConsistent(t *testing.T) {
	// iterate's first turn runs 5s, long enough to be reported stuck, then
	// the turns fail, idle, and last until the context ends.
	iterate := func() func(context.Context) error {
		var n atomic.Int64
		return func(ctx context.Context) error {
			switch n.Add(1) {
			case 1:
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
				return nil
			case 2:
				return errHostile
			case 3:
				return backi.ErrNoWork
			}
			<-ctx.Done()
			return ctx.Err()
		}
	}
	t.Run("Concurrent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			obs := new(stateLog)
			w := backi.Loop("pair", iterate(), backi.WithConcurrency(2), backi.WithObserver(obs), backi.WithLogger(quiet),
				backi.WithStuckAfter(time.Second), backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithIdle(time.Second, time.Second))
			r := runWorker(t, w)
			time.Sleep(time.Minute)
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v, want nil at the context's end", err)
			}
			obs.check(t)
		})
	})
	t.Run("Leader", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			obs := new(stateLog)
			e := newFakeElector()
			w := backi.Loop("singleton", iterate(), backi.WithLeader(e), backi.WithObserver(obs), backi.WithLogger(quiet),
				backi.WithStuckAfter(time.Second), backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithIdle(time.Second, time.Second))
			r := runWorker(t, w)
			e.fail <- errHostile // a failed campaign, then a term
			t1 := e.grant(1)
			time.Sleep(20 * time.Second)
			close(t1.done) // lost, then a second term
			e.grant(2)
			time.Sleep(5 * time.Second)
			if err := r.stop(); err != nil {
				t.Fatalf("Run = %v, want nil at the context's end", err)
			}
			obs.check(t)
		})
	})
}
