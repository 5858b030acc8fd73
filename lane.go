package backi

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// A lane is one loop of a worker (see WithConcurrency). It runs on a
// goroutine of its own, alone owns its slot's state, its attempt counter and
// its timer, and runs turns when its pacer says.
type lane struct {
	r     *run
	w     *Worker
	sl    *slot
	index int

	ctx     context.Context // the loop's: ends when the worker stops or leadership is lost
	done    <-chan struct{}
	pace    pacer
	timer   *time.Timer // for the loop's waits, made on the first one
	attempt int         // consecutive failures
	scope   Scope

	// Set when the lane's goroutine ends: restart when a callback called
	// runtime.Goexit and the loop goes on, after hold; else err, its result.
	restart bool
	hold    time.Duration
	err     error

	goexitCleanup error // of the scope released as a turn called runtime.Goexit
}

// start runs the lane on a goroutine of its own, and sends it on ended when
// that goroutine ends, however it ends.
func (l *lane) start(ctx context.Context, ended chan<- *lane) {
	l.ctx, l.done = ctx, ctx.Done()
	l.restart, l.err = false, nil
	go func() {
		defer func() { ended <- l }()
		normal := false
		defer func() {
			l.stopTimer()
			if !normal {
				l.exited()
			}
		}()
		l.err = l.drive()
		normal = true
	}()
}

// exited handles the end of a lane's goroutine by runtime.Goexit, from a
// callback on it: the turn in flight fails with ErrGoexit, and the loop goes
// on after the failure's wait, on a new goroutine.
func (l *lane) exited() {
	l.restart, l.hold = true, DefaultBackoffMin // in case what follows calls Goexit too
	t := turnResult{res: ResultFailure, err: errors.Join(ErrGoexit, l.goexitCleanup), end: time.Now()}
	l.goexitCleanup = nil
	if stop, err := l.settle(&t); stop {
		l.restart, l.err = false, err
		return
	}
	l.hold = t.wait
}

// drive runs turns when the lane's pacer says, until the loop's context ends
// or the worker must end, and returns the loop's result.
func (l *lane) drive() error {
	if l.hold > 0 {
		l.setState(StateBackingOff)
		if l.wait(time.Now().Add(l.hold), false) == waitDone {
			return nil
		}
		l.hold = 0
	}
	for !isDone(l.done) {
		s := l.pace.next(l)
		if s.end {
			return s.err
		}
		if !s.at.IsZero() {
			l.setState(s.state)
			switch l.wait(s.at, s.wakeable) {
			case waitDone:
				return nil
			case waitWoken:
				s.woken = true
			}
		}
		if s.retry {
			continue
		}
		t := l.turn(s)
		switch t.res {
		case ResultShutdown:
			return nil
		case ResultStopped:
			return t.err
		}
		if stop, err := l.settle(&t); stop {
			return err
		}
		l.pace.ended(l, s, t)
	}
	return nil
}

// turnResult is how one turn went.
type turnResult struct {
	res  Result
	err  error     // what matters for res: the failure, or Stop's error
	end  time.Time // when the iteration returned
	it   Iteration // built for the turn (Continuous), for its own failure hook
	wait time.Duration
}

// turn runs one iteration: the turn's bookkeeping around iterate.
func (l *lane) turn(s step) turnResult {
	r, sl := l.r, l.sl
	start := time.Now()
	sl.started.Store(start.UnixNano())
	l.setState(StateRunning)
	debug := r.log.Enabled(l.ctx, slog.LevelDebug)
	var seq uint64
	if debug || r.obs != nil {
		seq = sl.count() + 1
	}
	if debug {
		r.log.LogAttrs(l.ctx, slog.LevelDebug, "iteration started", slog.Int("loop", l.index), slog.Uint64("iteration", seq))
	}
	ctx := l.ctx
	switch {
	case s.woken && !s.due.IsZero():
		r.log.LogAttrs(ctx, slog.LevelInfo, "run on Wake", slog.Time("next", s.due))
	case !s.due.IsZero():
		r.log.LogAttrs(ctx, slog.LevelInfo, "scheduled run", slog.Time("due", s.due), slog.Duration("late", start.Sub(s.due)))
		ctx = context.WithValue(ctx, dueKey{}, s.due)
	}
	ev := IterationEvent{Worker: l.w.name, Loop: l.index, Iteration: seq, Start: start}
	if r.obs != nil {
		ctx = r.obs.IterationStart(ctx, ev)
	}
	it, err := l.iterate(ctx)
	res, rerr := l.outcome(err)
	end := time.Now()
	if debug {
		r.log.LogAttrs(l.ctx, slog.LevelDebug, "iteration finished", slog.Int("loop", l.index), slog.Uint64("iteration", seq),
			slog.Duration("duration", end.Sub(start)), slog.String("result", res.String()), slog.Any("err", err))
	}
	l.count(res, end)
	if r.obs != nil {
		r.obs.IterationEnd(ctx, ev, IterationResult{Result: res, Err: err, Duration: end.Sub(start)})
	}
	return turnResult{res: res, err: rerr, end: end, it: it}
}

// iterate runs the turn's iteration under ctx: fn, or a Continuous build and
// its Iteration in the lane's scope, released after; with the worker's
// timeout, if any. A panic becomes a *PanicError.
func (l *lane) iterate(ctx context.Context) (Iteration, error) {
	if l.w.build == nil && l.w.cfg.timeout == 0 {
		return nil, call(ctx, l.w.fn)
	}
	return l.iterateSlow(ctx)
}

// iterateSlow is iterate with a scope or a timeout.
func (l *lane) iterateSlow(ctx context.Context) (it Iteration, err error) {
	w := l.w
	ictx := ctx
	if w.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ictx, cancel = context.WithTimeout(ctx, w.cfg.timeout)
		defer cancel()
	}
	if w.build == nil {
		err = call(ictx, w.fn)
	} else {
		it, err = l.buildAndRun(ictx)
	}
	if ictx != ctx && ictx.Err() != nil && ctx.Err() == nil {
		err = late(w.cfg.timeout, err)
	}
	if w.build != nil {
		if cerr := l.scope.release(l.ctx, w.cfg.cleanupTimeout, l.r.log); cerr != nil {
			err = joinCleanup(err, cerr)
		}
	}
	return it, err
}

// buildAndRun builds a Continuous turn's Iteration and runs it. Should either
// call runtime.Goexit, it releases the scope on the way out and keeps the
// cleanups' errors for the turn's failure (see exited).
func (l *lane) buildAndRun(ctx context.Context) (it Iteration, err error) {
	normal := false
	defer func() {
		if !normal {
			l.goexitCleanup = l.scope.release(l.ctx, l.w.cfg.cleanupTimeout, l.r.log)
		}
	}()
	it, err = protect(func() (Iteration, error) { return l.w.build(ctx, &l.scope) })
	switch {
	case err != nil:
	case it == nil:
		err = errors.New("backi: Continuous build returned a nil Iteration and no error")
	default:
		err = call(ctx, it.Run)
	}
	normal = true
	return it, err
}

// late makes the result err of an iteration that outlived its timeout a
// failure, unless it asked to stop.
func late(timeout time.Duration, err error) error {
	switch res, _ := kind(err); res {
	case ResultStopped:
		return err
	case ResultNoWork:
		err = nil // late is a failure, not an idle turn
	}
	return &timeoutError{timeout: timeout, err: err}
}

// joinCleanup adds cleanup errors to a turn's result. Cleanup errors make the
// turn a failure, unless it asked to stop: then Run returns them too.
func joinCleanup(err, cerr error) error {
	switch res, serr := kind(err); res {
	case ResultStopped:
		return Stop(errors.Join(serr, cerr))
	case ResultSuccess, ResultNoWork:
		return cerr
	}
	return errors.Join(err, cerr)
}

// outcome tells what a turn whose iteration returned err came to, and the
// error that matters for it. Shutdown is not a failure, whatever the
// iteration returned.
func (l *lane) outcome(err error) (Result, error) {
	if err != nil && isDone(l.done) {
		return ResultShutdown, nil
	}
	switch res, serr := kind(err); res {
	case ResultStopped:
		return res, serr
	case ResultFailure:
		return res, err
	default:
		return res, nil
	}
}

// count counts a turn that ended at end with res, unless it failed: that is
// for fail.
func (l *lane) count(res Result, end time.Time) {
	sl := l.sl
	switch res {
	case ResultSuccess:
		sl.successes.Add(1)
		sl.lastSuccess.Store(end.UnixNano())
		l.w.stats.resetConsecutive()
	case ResultNoWork:
		sl.noWork.Add(1)
		l.w.stats.resetConsecutive()
	case ResultShutdown, ResultStopped:
		sl.other.Add(1)
	}
}

// settle keeps the lane's attempt count, and handles a failure: it sets the
// wait before the next turn, or reports that the worker must end, and with
// which error.
func (l *lane) settle(t *turnResult) (bool, error) {
	if t.res != ResultFailure {
		l.attempt = 0
		return false, nil
	}
	l.attempt++
	wait, stop, err := l.fail(t.err, t.it, t.end)
	t.wait = wait
	return stop, err
}

// setState records the loop's state and tells the observer of a change.
// Changes of one loop are told in order, never at once: the stuck check
// changes the state too (see markStuck).
func (l *lane) setState(st State) {
	sl := l.sl
	if State(sl.state.Load()) == st {
		return
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	old := State(sl.state.Load())
	if old == st {
		return
	}
	sl.state.Store(int32(st))
	if obs := l.r.obs; obs != nil {
		obs.StateChange(l.w.name, l.index, old, st)
	}
}

// markStuck turns the loop's state from running to stuck once its iteration
// has run longer than d at now, and reports for how long it has run.
func (l *lane) markStuck(now time.Time, d time.Duration) (time.Duration, bool) {
	sl := l.sl
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if State(sl.state.Load()) != StateRunning {
		return 0, false
	}
	ran := now.Sub(time.Unix(0, sl.started.Load()))
	if ran <= d {
		return 0, false
	}
	sl.state.Store(int32(StateStuck))
	if obs := l.r.obs; obs != nil {
		obs.StateChange(l.w.name, l.index, StateRunning, StateStuck)
	}
	return ran, true
}

// waitResult says how a wait ended.
type waitResult int

const (
	waitDone    waitResult = iota // the loop's context ended
	waitElapsed                   // the time was up
	waitWoken                     // Wake was called
)

// wait blocks until until, or until the loop's context ends or, when
// wakeable, Wake is called. A wait that is already over ends at once; it
// consumes a pending Wake, since a run is about to happen anyway.
//
// Every wait is a receive on two channels: the loop's context and the slot's
// signal, which both the wait's timer and Wake feed. A token may outlive the
// wait it was meant for, so each one is checked against the deadline and the
// woken flag.
func (l *lane) wait(until time.Time, wakeable bool) waitResult {
	sl := l.sl
	d := time.Until(until)
	if d <= 0 {
		if wakeable {
			sl.woken.Store(false)
		}
		if isDone(l.done) {
			return waitDone
		}
		return waitElapsed
	}
	if wakeable && sl.woken.Swap(false) {
		return waitWoken
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(d, sl.poke)
	} else {
		l.timer.Reset(d)
	}
	for {
		select {
		case <-l.done:
			return waitDone
		case <-sl.signal:
			if wakeable && sl.woken.Swap(false) {
				l.timer.Stop()
				return waitWoken
			}
			if !time.Now().Before(until) {
				return waitElapsed
			}
		}
	}
}

// stopTimer stops the loop's wait timer, if it has one.
func (l *lane) stopTimer() {
	if l.timer != nil {
		l.timer.Stop()
	}
}

// isDone reports, without blocking, whether done is closed.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}
