package backitest

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/safe"
	"github.com/backi-go/backi/internal/testhook"
)

// TB is what the helpers of this package need of a test; *testing.T,
// *testing.B, *testing.F and every testing.TB have it. Call them from the
// test's goroutine: they report a failure with Fatalf, which is expected to
// end that goroutine, as testing's does. Should Fatalf return instead, the
// helper returns the error it reported.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// DefaultWithin bounds the waits of RunN, RunUntil and Recorder.Wait when no
// Within option is given. It is measured on the clock of the caller: inside a
// testing/synctest bubble that is the bubble's, on which backoff, idle and
// scheduled waits pass at once.
const DefaultWithin = time.Minute

// An Option changes how long RunN, RunUntil and Recorder.Wait wait.
type Option interface {
	apply(*settings) error
}

type settings struct {
	within time.Duration
}

type within time.Duration

func (d within) apply(s *settings) error {
	if d <= 0 {
		return fmt.Errorf("Within(%v): need a positive duration", time.Duration(d))
	}
	s.within = time.Duration(d)
	return nil
}

// Within bounds a wait by d instead of DefaultWithin: the wait fails the test
// once d has passed on the caller's clock without what it awaits happening.
// RunN and RunUntil also give Run d to return after they cancel it. Raise it
// for a worker whose waits are long, such as a daily schedule in a synctest
// bubble. d must be positive.
func Within(d time.Duration) Option { return within(d) }

// settle returns the settings that opts make.
func settle(opts []Option) (settings, error) {
	s := settings{within: DefaultWithin}
	for _, o := range opts {
		if o == nil {
			return s, errors.New("nil Option")
		}
		if err := o.apply(&s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// RunN runs w, calling w.Run on a goroutine of its own, until n iterations of
// this Run have ended (whatever their result), then cancels Run's context,
// waits for Run to return and returns what it returned: nil, or the error
// that ended the worker with the n-th iteration, such as the one given to
// backi.Stop. With one loop, the worker stops right after the n-th
// iteration, before another starts, so that its Status counts exactly what
// those n did (Status keeps counting across Runs of a worker). With
// WithConcurrency, the iterations of the other loops in flight at that moment
// end too, their contexts cancelled.
//
// RunN fails the test, naming the worker, what it awaited and the worker's
// last Status, if Run returns (with or without an error) before n iterations
// have ended, if they have not all ended within the bound (DefaultWithin, or
// Within), if Run does not return within the bound once cancelled, and if
// Run's goroutine panics or calls runtime.Goexit (as t.FailNow does from an
// iteration: report with t.Error there, or return an error). A worker that is
// already running fails it too, as its Run returns an error at once, and so
// do a nil worker, n below 1 and an invalid option.
//
// Inside a testing/synctest bubble, the worker's backoff, idle and scheduled
// waits take no real time. RunN returns once the goroutine it started has
// ended, unless Run ignores the cancellation past the bound: it then fails
// the test and leaves that goroutine behind.
func RunN(t TB, w *backi.Worker, n int, opts ...Option) error {
	if t == nil {
		panic("backitest: RunN: t is nil")
	}
	t.Helper()
	call := fmt.Sprintf("RunN(%s, %d)", workerName(w), n)
	if w == nil {
		return fail(t, fmt.Errorf("backitest: %s: the worker is nil", call))
	}
	if n < 1 {
		return fail(t, fmt.Errorf("backitest: %s: n must be at least 1", call))
	}
	s, err := settle(opts)
	if err != nil {
		return fail(t, fmt.Errorf("backitest: %s: %w", call, err))
	}
	ended := 0
	wt := &watch{t: t, w: w, call: call, within: s.within,
		holds: func(e event) (bool, error) {
			if e == iterationEnded {
				ended++
			}
			return ended >= n, nil
		},
		awaited: func() string { return fmt.Sprintf("%s to end (%d ended)", plural(n, "iteration"), ended) },
	}
	return wt.run()
}

// RunUntil runs w, calling w.Run on a goroutine of its own, until
// cond(w.Status()) holds, then cancels Run's context, waits for Run to return
// and returns what it returned: nil, or the error that ended the worker.
//
// cond is called on the goroutine that called RunUntil (so it may call
// t.Fatal) whenever a loop of the worker changes state, after every
// iteration ends, and once more should Run return by itself. It must return
// quickly: the worker waits for it. Once it holds, the worker goes no
// further; but an iteration that has begun (its loop in backi.StateRunning)
// still runs to its end, with its context cancelled.
//
// RunUntil fails the test, naming the worker, what it awaited and the
// worker's last Status, if Run returns (with or without an error) while cond
// does not hold, if cond does not hold within the bound (DefaultWithin, or
// Within), if cond panics, and in the other cases RunN fails it. Inside a
// testing/synctest bubble, the worker's waits take no real time.
func RunUntil(t TB, w *backi.Worker, cond func(backi.Status) bool, opts ...Option) error {
	if t == nil {
		panic("backitest: RunUntil: t is nil")
	}
	t.Helper()
	call := fmt.Sprintf("RunUntil(%s)", workerName(w))
	switch {
	case w == nil:
		return fail(t, fmt.Errorf("backitest: %s: the worker is nil", call))
	case cond == nil:
		return fail(t, fmt.Errorf("backitest: %s: the condition is nil", call))
	}
	s, err := settle(opts)
	if err != nil {
		return fail(t, fmt.Errorf("backitest: %s: %w", call, err))
	}
	ends, changes := 0, 0
	wt := &watch{t: t, w: w, call: call, within: s.within,
		holds: func(e event) (bool, error) {
			switch e {
			case iterationEnded:
				ends++
			case stateChanged:
				changes++
			}
			return holds(cond, w.Status())
		},
		awaited: func() string {
			return fmt.Sprintf("the condition to hold (checked after %s and %s)", plural(ends, "iteration end"), plural(changes, "change of state"))
		},
	}
	return wt.run()
}

// holds calls cond with v, and returns its panic as an error.
func holds[T any](cond func(T) bool, v T) (ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("the condition panicked: %s\n%s", safe.Text(v), debug.Stack())
		}
	}()
	return cond(v), nil
}

// fail reports err through t, and returns it should t.Fatalf return.
func fail(t TB, err error) error {
	t.Helper()
	t.Fatalf("%s", err)
	return err
}

// workerName quotes w's name for messages.
func workerName(w *backi.Worker) string {
	if w == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", w.Name())
}

// An event is what a watcher tells the goroutine that watches.
type event int

const (
	iterationEnded event = iota
	stateChanged
	runReturned // Run has returned, or its goroutine ended
)

// watch runs one worker until what it awaits holds.
type watch struct {
	t      TB
	w      *backi.Worker
	call   string // how the helper was called, for messages
	within time.Duration
	// holds tells, on the test's goroutine, whether what the helper awaits
	// holds after e, or why it cannot tell.
	holds func(e event) (bool, error)
	// awaited says what the helper waits for and how far it got, for
	// messages: "3 iterations to end (2 ended)".
	awaited func() string
}

// run runs the worker until holds says so, Run returns, or the bound passes;
// then it stops the worker and waits for Run to return, reporting a failure
// through t.
func (wt *watch) run() error {
	t := wt.t
	t.Helper()
	o := &watcher{events: make(chan event), looked: make(chan struct{}), released: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), testhook.Key{}, testhook.Hook{Worker: wt.w, Observer: o}))
	r := &runner{done: make(chan struct{})}
	go r.run(ctx, wt.w)
	stopped, joined := false, false
	stop := func() {
		if !stopped {
			stopped = true
			cancel() // before the loops go on, so that none begins another turn
			close(o.released)
			joined = r.join(wt.within)
		}
	}
	defer stop() // should holds call runtime.Goexit, as t.FailNow does

	bound := time.NewTimer(wt.within)
	defer bound.Stop()
	outcome, err := wt.await(o, r, bound.C)
	last := wt.w.Status() // before the cancellation changes it
	stop()

	switch {
	case err != nil:
		return fail(t, fmt.Errorf("backitest: %s: %w", wt.call, err))
	case !joined:
		return fail(t, fmt.Errorf("backitest: %s: Run did not return within %v once its context was cancelled: an iteration, or another callback, may ignore its context; its goroutine is left running; status: %s",
			wt.call, wt.within, describe(wt.w.Status())))
	case r.panicked != nil:
		return fail(t, fmt.Errorf("backitest: %s: Run panicked: %s\n%s", wt.call, safe.Text(r.panicked), r.stack))
	case !r.returned:
		return fail(t, fmt.Errorf("backitest: %s: Run did not return: its goroutine called runtime.Goexit, as t.FailNow does from an iteration (report with t.Error there, or return an error), while waiting for %s; status: %s",
			wt.call, wt.awaited(), describe(wt.w.Status())))
	case outcome == timedOut:
		return fail(t, fmt.Errorf("backitest: %s: waited %v for %s (backitest.Within sets the bound); status: %s", wt.call, wt.within, wt.awaited(), describe(last)))
	case outcome == returned:
		return fail(t, fmt.Errorf("backitest: %s: Run returned %s while waiting for %s; status: %s", wt.call, result(r.err), wt.awaited(), describe(wt.w.Status())))
	}
	return r.err
}

// outcome is how a wait ended.
type outcome int

const (
	held     outcome = iota // what the helper awaits holds
	returned                // Run returned, or its goroutine ended, first
	timedOut                // the bound passed first
)

// await takes the watcher's events, and asks holds about each, until it
// holds, Run returns or the bound passes. It leaves the loop that told the
// event that held waiting (see watcher), for the caller to cancel the run
// before it goes on.
func (wt *watch) await(o *watcher, r *runner, bound <-chan time.Time) (outcome, error) {
	for {
		select {
		case e := <-o.events:
			ok, err := wt.holds(e)
			if ok || err != nil {
				return held, err
			}
			o.looked <- struct{}{}
		case <-r.done:
			ok, err := wt.holds(runReturned)
			if ok || err != nil {
				return held, err
			}
			return returned, nil
		case <-bound:
			return timedOut, nil
		}
	}
}

// result describes what Run returned, for messages.
func result(err error) string {
	if err == nil {
		return "nil"
	}
	return "an error (" + safe.Text(err) + ")"
}

// watcher is the observer that RunN and RunUntil add to the Run they start.
// It hands each iteration's end and each change of state to the goroutine
// that watches, and holds the loop until that goroutine has looked, so that
// the Run can be cancelled before the loop goes any further. Only one loop at
// a time is between its send on events and its receive on looked, so a
// single looked channel serves them all. Once released is closed, it holds
// nothing.
type watcher struct {
	events   chan event
	looked   chan struct{}
	released chan struct{}
}

func (o *watcher) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}

func (o *watcher) IterationEnd(context.Context, backi.IterationEvent, backi.IterationResult) {
	o.tell(iterationEnded)
}

func (o *watcher) StateChange(string, int, backi.State, backi.State) {
	o.tell(stateChanged)
}

func (o *watcher) tell(e event) {
	select {
	case o.events <- e:
	case <-o.released:
		return
	}
	select {
	case <-o.looked:
	case <-o.released:
	}
}

// runner runs a worker on a goroutine of its own and keeps how Run ended.
// Its fields are read once done is closed.
type runner struct {
	done     chan struct{}
	err      error
	returned bool // Run returned, with err
	panicked any  // what Run's goroutine panicked with, if it did
	stack    []byte
}

func (r *runner) run(ctx context.Context, w *backi.Worker) {
	defer close(r.done)
	defer func() {
		if v := recover(); v != nil {
			r.panicked, r.stack = v, debug.Stack()
		}
	}()
	r.err = w.Run(ctx)
	r.returned = true
}

// join waits up to d for Run's goroutine to end, and reports whether it did.
func (r *runner) join(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.done:
		return true
	case <-t.C:
		return false
	}
}

// describe tells the gist of s, for messages.
func describe(s backi.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state %s, %s (%d successes, %d failures, %d no work)",
		s.State, plural(int(s.Iterations), "iteration"), s.Successes, s.Failures, s.NoWork)
	if !s.InFlightSince.IsZero() {
		fmt.Fprintf(&b, ", one in flight for %v", time.Since(s.InFlightSince))
	}
	if s.LastError != nil {
		fmt.Fprintf(&b, ", last error: %s", safe.Text(s.LastError))
	}
	if s.CampaignFailures > 0 {
		fmt.Fprintf(&b, ", %d failed campaigns", s.CampaignFailures)
	}
	switch {
	case s.Leader:
		fmt.Fprintf(&b, ", leading under term %d", s.Term)
	case s.Term > 0:
		fmt.Fprintf(&b, ", not leading (last term %d)", s.Term)
	}
	return b.String()
}

// plural returns n and one, or its plural for n other than 1: one with an
// s, or with "changes" for "change".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	if rest, ok := strings.CutPrefix(one, "change "); ok {
		return fmt.Sprintf("%d changes %s", n, rest)
	}
	return fmt.Sprintf("%d %ss", n, one)
}
