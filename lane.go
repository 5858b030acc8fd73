package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// A lane is one loop of a worker (see WithConcurrency). It alone owns its
// slot's state, its attempt counter and its timer, and runs turns when its
// pacer says.
type lane struct {
	r     *run
	w     *Worker
	sl    *slot
	index int

	ctx     context.Context // the loop's: ends when the worker stops or leadership is lost
	done    <-chan struct{}
	term    *held                   // the term the loop runs under, if any
	trusted time.Time               // the term's lease, as last asked: no need to ask again before
	lose    context.CancelCauseFunc // cancels ctx
	pace    pacer
	timer   *time.Timer // for the loop's waits, made on the first one
	attempt int         // consecutive failures
	scope   *Scope      // the turn's
	inTurn  bool        // a turn has begun and is not counted yet
	turned  bool        // a turn has begun since the loop started (see hold)
	goexit  error       // the cleanups' errors of a turn ended by runtime.Goexit
	err     error       // the loop's result, once run has returned
	stopped bool        // the loop ended the worker: Stop, a hook or the escalation policy
}

// run runs the loop until it ends, with its result in l.err. Should a
// callback on the loop's goroutine call runtime.Goexit, the worker ends: the
// turn in flight fails with ErrGoexit, after its cleanups, and that is the
// result, although Go then ends the goroutine (see Worker.Run).
func (l *lane) run() {
	l.stopped = false
	normal := false
	defer func() {
		l.stopTimer()
		l.sl.setNextRun(time.Time{})
		if !normal {
			l.exited()
		}
	}()
	l.err = l.drive()
	normal = true
}

// exited ends the loop after runtime.Goexit: its result is ErrGoexit, joined
// to the errors of the cleanups the Goexit cut short, and the turn in flight,
// unless it was counted already, is recorded as a failure. The result is set
// first, in case what records the failure calls Goexit too.
func (l *lane) exited() {
	err := errors.Join(ErrGoexit, l.goexit)
	l.goexit = nil
	l.err, l.stopped = fmt.Errorf("backi: worker %q: %w", l.w.name, err), true
	if l.inTurn {
		now := time.Now()
		l.failed(err, nil, now.Sub(unixTime(l.sl.started.Load())), now)
	}
}

// drive runs turns when the lane's pacer says, until the loop's context ends
// or the worker must end, and returns the loop's result.
func (l *lane) drive() error {
	var t turn // the last turn, then the next
	for !isDone(l.done) {
		if l.w.stats.paused.Load() {
			if !l.hold() {
				return nil
			}
			t = turn{}
		}
		s := l.pace.next(l)
		if s.stop {
			l.stopped = true
			return s.err
		}
		start := t.free // a turn that follows the last at once starts then
		s.woken = false
		if !s.at.IsZero() || start.IsZero() {
			switch l.await(s) {
			case waitDone:
				return nil
			case waitPaused:
				continue
			}
			start = time.Now()
		}
		if s.retry || l.w.stats.paused.Load() {
			continue
		}
		if l.termOver() {
			l.lose(ErrLeadershipLost)
			return nil
		}
		if l.w.stats.paused.Load() { // paused while termOver asked the lease
			continue
		}
		l.begin(&t, start, s.due, s.woken)
		l.iterate(&t)
		if stop, err := l.end(&t, s); stop {
			return err
		}
	}
	return nil
}

// hold waits while the worker is paused, in StatePaused, and then starts the
// loop's pacing afresh, as Run does. It reports false when the loop's context
// ends first. A Wake made before the pause is dropped, one made during it is
// ignored (Wake tells them apart), and the first loop says so; a Wake made
// after Resume counts.
func (l *lane) hold() bool {
	sl, log := l.sl, l.r.log
	l.setState(StatePaused)
	sl.setNextRun(time.Time{})
	if sl.woken.Swap(false) {
		l.w.stats.wakeIgnored.Store(true)
	}
	if l.index == 0 {
		log.LogAttrs(l.ctx, slog.LevelInfo, "worker paused")
	}
	said := false // that a Wake was ignored: once per pause, as wakes may come in floods
	for l.w.stats.paused.Load() {
		said = l.ignoredWake(said)
		select {
		case <-l.done:
			return false
		case <-sl.signal:
		}
	}
	l.ignoredWake(said)
	if l.index == 0 {
		log.LogAttrs(l.ctx, slog.LevelInfo, "worker resumed")
	}
	l.pace = l.w.newPacer()
	if p, ok := l.pace.(*scheduled); ok && l.turned {
		p.resumed = true // the run at start is done: WithRunAtStart does not repeat it
	}
	return true
}

// ignoredWake logs, on the first loop, that a Wake was ignored, if one was
// and it has not said so during this pause (wakes may come in floods). It
// reports whether it has said so.
func (l *lane) ignoredWake(said bool) bool {
	if l.index == 0 && l.w.stats.wakeIgnored.Swap(false) && !said {
		l.r.log.LogAttrs(l.ctx, slog.LevelInfo, "Wake ignored: the worker is paused")
		return true
	}
	return said
}

// await waits until the start of step s, if it has one, and notes in s
// whether Wake ended the wait.
func (l *lane) await(s *step) waitResult {
	if s.at.IsZero() {
		return waitElapsed
	}
	l.setState(s.state)
	res := l.wait(s.at, s.wakeable)
	s.woken = res == waitWoken
	return res
}

// A turn runs one iteration in three steps: begin, iterate and end.
type turn struct {
	ctx   context.Context // the iteration's
	start time.Time
	free  time.Time // when the lane was done with the turn, the observer and debug log included
	seq   uint64    // the iteration's number, counted only for the observer and the debug log
	debug bool      // whether the logger takes Debug records
	it    Iteration // built for the turn (Continuous), for its own failure hook
	err   error     // what the iteration returned
}

// begin starts turn t at start: the scheduled run due at due if due is not
// zero, or one that Wake asked for. It records the start and makes the
// iteration's context.
func (l *lane) begin(t *turn, start, due time.Time, woken bool) {
	*t = turn{start: start, debug: l.r.log.Enabled(l.ctx, slog.LevelDebug)}
	l.inTurn, l.turned = true, true
	l.sl.started.Store(t.start.UnixNano())
	l.setState(StateRunning)
	if t.debug || l.r.obs != nil {
		t.seq = l.sl.count() + 1
	}
	if t.debug {
		l.logStarted(t.seq)
	}
	t.ctx = l.iterationContext(t, due, woken)
}

// end finishes the turn t of step s: it counts the turn, handles a failure
// and tells the pacer. It reports whether the loop ends instead, and with
// which error.
func (l *lane) end(t *turn, s *step) (bool, error) {
	it, err := t.it, t.err
	res, rerr := l.outcome(err)
	end := time.Now()
	t.free = end
	l.sl.started.Store(0) // no longer in flight
	if t.debug {
		l.logFinished(t.seq, res, end.Sub(t.start), err)
	}
	l.count(res, end)
	if obs := l.r.obs; obs != nil {
		obs.IterationEnd(t.ctx, l.event(t), IterationResult{Result: res, Err: err, Duration: end.Sub(t.start)})
	}
	if t.debug || l.r.obs != nil {
		t.free = time.Now()
	}
	var wait time.Duration
	switch res {
	case ResultShutdown:
		return true, nil
	case ResultStopped:
		l.stopped = true
		return true, rerr
	case ResultFailure:
		var stop bool
		if wait, stop, rerr = l.failed(rerr, it, end.Sub(t.start), end); stop {
			l.stopped = true
			return true, rerr
		}
	default:
		l.attempt = 0
	}
	l.pace.ended(l, s, res, end, wait)
	return false, nil
}

// event describes the iteration of turn t, for the observer.
func (l *lane) event(t *turn) IterationEvent {
	return IterationEvent{Worker: l.w.name, Loop: l.index, Iteration: t.seq, Start: t.start}
}

// iterationContext returns the context of the iteration of turn t: the
// loop's, with the due time of a scheduled run, and what the observer adds.
// It logs a scheduled run, and a run Wake asked for in a periodic worker.
func (l *lane) iterationContext(t *turn, due time.Time, woken bool) context.Context {
	ctx, log := l.ctx, l.r.log
	switch {
	case due.IsZero():
	case woken:
		log.LogAttrs(ctx, slog.LevelInfo, "run on Wake", slog.Time("next", due))
	default:
		log.LogAttrs(ctx, slog.LevelInfo, "scheduled run", slog.Time("due", due), slog.Duration("late", t.start.Sub(due)))
		ctx = context.WithValue(ctx, dueKey{}, due)
	}
	if l.r.obs != nil {
		ctx = l.r.obs.IterationStart(ctx, l.event(t))
	}
	return ctx
}

func (l *lane) logStarted(seq uint64) {
	l.r.log.LogAttrs(l.ctx, slog.LevelDebug, "iteration started", slog.Int("loop", l.index), slog.Uint64("iteration", seq))
}

func (l *lane) logFinished(seq uint64, res Result, d time.Duration, err error) {
	l.r.log.LogAttrs(l.ctx, slog.LevelDebug, "iteration finished", slog.Int("loop", l.index), slog.Uint64("iteration", seq),
		slog.Duration("duration", d), slog.String("result", res.String()), slog.Any("err", err))
}

// iterate runs turn t's iteration under its context: fn, or a Continuous build and
// its Iteration in a scope of the turn's own, released after; with the
// worker's timeout, if any. A panic becomes a *PanicError.
func (l *lane) iterate(t *turn) {
	if l.w.build == nil && l.w.cfg.timeout == 0 {
		t.err = call(t.ctx, l.w.fn)
		return
	}
	t.it, t.err = l.iterateScoped(t.ctx)
}

// iterateScoped is iterate for a worker with a build or a timeout.
func (l *lane) iterateScoped(ctx context.Context) (it Iteration, err error) {
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
		if cerr := l.scope.release(); cerr != nil {
			err = joinCleanup(err, cerr)
		}
	}
	return it, err
}

// buildAndRun builds a Continuous turn's Iteration in a new scope and runs
// it. Should either call runtime.Goexit, it releases the scope on the way out
// and keeps the cleanups' errors for the turn's failure (see exited).
func (l *lane) buildAndRun(ctx context.Context) (it Iteration, err error) {
	l.scope = newScope(l.ctx, l.w.cfg.cleanupTimeout, l.r.log)
	normal := false
	defer func() {
		if !normal {
			l.goexit = l.scope.release()
		}
	}()
	it, err = protect(func() (Iteration, error) { return l.w.build(ctx, l.scope) })
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
// error that matters for it. Stop is honoured even during shutdown, and a
// panic is a failure then too; anything else the iteration returned while
// the loop's context ended is not a failure.
func (l *lane) outcome(err error) (Result, error) {
	res, serr := kind(err)
	switch {
	case res == ResultStopped:
		return res, serr
	case err != nil && isDone(l.done) && !isPanic(err):
		return ResultShutdown, nil
	case res == ResultFailure:
		return res, err
	}
	return res, nil
}

// count counts a turn that ended at end with res, unless it failed: that is
// for fail.
func (l *lane) count(res Result, end time.Time) {
	sl := l.sl
	if res != ResultFailure {
		l.inTurn = false
	}
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

// failed counts a failure of the lane at now, of a turn that took took, in
// its attempts and handles it (see fail): it returns the wait before the next
// turn, or stop and the worker's error.
func (l *lane) failed(err error, it Iteration, took time.Duration, now time.Time) (time.Duration, bool, error) {
	l.attempt++
	return l.fail(err, it, took, now)
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
	started := sl.started.Load()
	if State(sl.state.Load()) != StateRunning || started == 0 {
		return 0, false
	}
	ran := now.Sub(time.Unix(0, started))
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
	waitPaused                    // the worker was paused
)

// wait blocks until until, or until the loop's context ends, the worker is
// paused or, when wakeable, Wake is called. A wait that is already over ends at once; it
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
	if l.w.stats.paused.Load() {
		return waitPaused
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
			if l.w.stats.paused.Load() {
				l.timer.Stop()
				return waitPaused
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
