package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Iteration is one short unit of background work. Run should return soon after
// ctx is done. Its result tells the worker what to do next: nil runs the next
// iteration at once, ErrNoWork idles, Stop ends the worker, and any other
// error is a failure followed by a backoff wait.
type Iteration interface {
	Run(ctx context.Context) error
}

// IterationFunc adapts a function to the Iteration interface.
type IterationFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f IterationFunc) Run(ctx context.Context) error { return f(ctx) }

var errDeadline = context.DeadlineExceeded

// Worker runs iterations on repeat, for as long as its Run is running. Make one
// with [Loop] or [Continuous]. A Worker is a [Service], so a [Host] can run it.
// Its methods are safe for concurrent use.
type Worker struct {
	name  string
	fn    func(context.Context) error                      // set by Loop
	build func(context.Context, *Scope) (Iteration, error) // set by Continuous

	cfg    config
	cfgErr error
	esc    escalation
	began  time.Time // when the Run in progress started

	// What a stopping worker reads and writes lies together, at the end of
	// stats and the start of what follows: the lifecycle, what the Run in
	// progress uses besides the options (set as it starts, see start), and
	// the failure log's count of unwritten repeats.
	stats   stats
	log     *slog.Logger // with the worker's name
	base    *slog.Logger // what log derives from, shared with other workers
	obs     Observer     // nil for none
	failLog failureLog
}

// Loop returns a worker that calls fn on repeat. fn's result has the meaning
// described at [Iteration].
func Loop(name string, fn func(ctx context.Context) error, opts ...Option) *Worker {
	w := &Worker{name: name, fn: fn}
	w.setup(opts)
	return w
}

// Continuous returns a worker that builds a fresh Iteration for every turn and
// runs it. What build registers with s.Defer is released after the turn, in
// reverse order, always. An error or panic from build is a failure of the turn.
func Continuous(name string, build func(ctx context.Context, s *Scope) (Iteration, error), opts ...Option) *Worker {
	w := &Worker{name: name, build: build}
	w.setup(opts)
	return w
}

// Name returns the worker's name.
func (w *Worker) Name() string { return w.name }

// check reports the worker's configuration error, if any, without running it.
func (w *Worker) check() error {
	if w.build == nil && w.fn == nil {
		return errors.New("backi: the Worker was not made by Loop or Continuous")
	}
	return w.cfgErr
}

// Status returns a snapshot of the worker. It never blocks.
func (w *Worker) Status() Status {
	return w.stats.snapshot(w.name)
}

// Wake ends the idle wait (after ErrNoWork) of each of the worker's loops at
// once; a loop that is not idle skips its next idle wait instead. Wake does
// not cut short a backoff wait after a failure. It never blocks, and may be
// called before Run.
func (w *Worker) Wake() {
	for i := range w.stats.slots {
		w.stats.slots[i].wake()
	}
}

// setup applies the options and checks the configuration, for Run to report.
func (w *Worker) setup(opts []Option) {
	err := w.cfg.init(opts)
	switch {
	case w.name == "":
		w.cfgErr = errors.New("backi: worker name is empty")
	case w.fn == nil && w.build == nil:
		w.cfgErr = fmt.Errorf("backi: worker %q: the iteration function is nil", w.name)
	case err != nil:
		w.cfgErr = fmt.Errorf("backi: worker %q: %w", w.name, err)
	default:
		if err := w.cfg.checkSchedule(); err != nil {
			w.cfgErr = fmt.Errorf("backi: worker %q: %w", w.name, err)
		}
	}
	w.stats.slots = make([]slot, max(w.cfg.concurrency, 1))
	for i := range w.stats.slots {
		w.stats.slots[i].signal = make(chan struct{}, 1)
	}
	w.esc.policy = w.cfg.escalation
}

// Run runs iterations until the worker ends, and returns only when none is in
// flight. It returns nil once ctx is done (cancelled or past its deadline), the
// error given to Stop when an iteration returns one (nil for Stop(nil)), an
// *EscalationError when the escalation policy gives up, and, before any
// iteration runs, an error naming the option when the configuration is
// invalid or Run is already running.
func (w *Worker) Run(ctx context.Context) error {
	// Run and what it calls keep small frames: what they hold lies under
	// every iteration, on the stack of each worker's goroutine.
	if err := w.start(ctx); err != nil {
		return err
	}
	// The lifecycle's last store ends Run, after everything it started has
	// returned: from then on another Run may begin.
	final := StateFailed
	defer func() { w.stats.lifecycle.Store(int32(final)) }()
	if w.stats.stuckAfter.Load() > 0 {
		defer w.startWatch(ctx)()
	}
	var err error
	if w.cfg.elector != nil {
		err = w.lead(ctx)
	} else {
		err = w.runLoops(ctx)
	}
	final = w.stopped(ctx, err)
	return err
}

// start checks the configuration, claims the worker for one Run, and settles
// what the Run uses besides the options, from the options or else from ctx,
// where a Host puts its own WithLogger, WithObserver and WithStuckAfter: the
// logger, with the worker's name; the observer; and the stuck threshold. It
// logs the start.
func (w *Worker) start(ctx context.Context) error {
	if w.cfgErr != nil {
		return w.cfgErr
	}
	if !w.stats.begin() {
		return fmt.Errorf("backi: worker %q is already running", w.name)
	}
	w.began = time.Now()
	log := w.cfg.logger
	if log == nil {
		log = loggerFrom(ctx)
	}
	w.base = log
	w.log = slog.New(log.Handler().WithAttrs([]slog.Attr{slog.String("worker", w.name)}))
	stuck := w.cfg.stuckAfter
	if d, ok := ctx.Value(stuckKey{}).(time.Duration); ok && stuck == 0 {
		stuck = d
	}
	w.stats.stuckAfter.Store(int64(stuck))
	w.obs = w.cfg.observer
	if o, ok := ctx.Value(observerKey{}).(Observer); ok && w.obs == nil {
		w.obs = o
	}
	if w.enabled(ctx, slog.LevelInfo) {
		w.log.LogAttrs(ctx, slog.LevelInfo, "worker started", slog.Int("concurrency", w.cfg.concurrency))
	}
	return nil
}

// enabled reports whether the worker's logger takes records at level. It asks
// the logger that log derives from, which workers usually share, so that its
// memory is more likely in cache when thousands of workers stop at once. It
// is asked before every record of a start or a stop: even a record the
// handler drops takes more stack than a worker's goroutine otherwise needs.
func (w *Worker) enabled(ctx context.Context, level slog.Level) bool {
	return w.base.Enabled(ctx, level)
}

// startWatch starts the stuck watcher and returns the function that stops it
// and waits until it has returned.
func (w *Worker) startWatch(ctx context.Context) (stop func()) {
	watched := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		defer close(watched)
		w.watch(ctx, stopWatch, time.Duration(w.stats.stuckAfter.Load()))
	}()
	return func() { close(stopWatch); <-watched }
}

// stopped reports the end of a Run that returns err, and returns the state
// it ends in.
func (w *Worker) stopped(ctx context.Context, err error) State {
	log := w.log
	w.failLog.flush(ctx, log)
	state, level := StateStopped, slog.LevelInfo
	if err != nil {
		state, level = StateFailed, slog.LevelError
	}
	if w.obs != nil {
		for i := range w.stats.slots {
			w.obs.StateChange(w.name, i, State(w.stats.slots[i].state.Load()), state)
		}
	}
	if w.enabled(ctx, level) {
		ran := slog.Duration("ran", time.Since(w.began))
		if err != nil {
			log.LogAttrs(ctx, level, "worker stopped", ran, slog.Any("err", err))
		} else {
			log.LogAttrs(ctx, level, "worker stopped", ran)
		}
	}
	return state
}

// runLoops runs the worker's loops until ctx is done or one of them ends the
// worker, and returns Run's result.
func (w *Worker) runLoops(ctx context.Context) error {
	switch {
	case w.cfg.schedule != nil:
		return w.periodic(w.newRunner(ctx, 0))
	case w.cfg.concurrency == 1:
		return w.loop(w.newRunner(ctx, 0))
	}
	return w.fanOut(ctx)
}

// fanOut runs the worker's loops in parallel, for WithConcurrency.
func (w *Worker) fanOut(ctx context.Context) error {
	n := w.cfg.concurrency
	lctx, cancel := context.WithCancel(ctx)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = w.loop(w.newRunner(lctx, i))
			cancel() // one loop's end is the worker's end
		})
	}
	wg.Wait()
	cancel()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// watch reports iterations that run longer than d, once each, until stop
// is closed.
func (w *Worker) watch(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	log, obs := w.log, w.obs
	t := time.NewTicker(max(d/10, time.Millisecond))
	defer t.Stop()
	slots := w.stats.slots
	warned := make([]uint64, len(slots)) // per loop: 1 + the number of iterations finished before the one reported
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for i := range slots {
				sl := &slots[i]
				if State(sl.state.Load()) != StateRunning {
					continue
				}
				seq := sl.count() + 1
				ran := now.Sub(time.Unix(0, sl.started.Load()))
				if ran > d && warned[i] != seq && State(sl.state.Load()) == StateRunning && sl.count()+1 == seq {
					warned[i] = seq
					log.LogAttrs(ctx, slog.LevelWarn, "iteration stuck", slog.Uint64("iteration", seq), slog.Duration("running", ran))
					if obs != nil {
						obs.StateChange(w.name, i, StateRunning, StateStuck)
					}
				}
			}
		}
	}
}

// runner runs the turns of one loop and keeps its counters.
type runner struct {
	// What a loop reads as it wakes from a wait or as an iteration returns
	// comes first, in one cache line: when a service stops, thousands of
	// loops wake at once, each over memory gone cold.
	w     *Worker
	sl    *slot
	done  <-chan struct{}
	timer *time.Timer // for the loop's waits, made on the first one
	obs   Observer    // nil for none
	debug bool        // whether the logger takes Debug records
	turns uint32      // turns run, to re-check debug now and then

	ctx         context.Context
	log         *slog.Logger
	cleanupBase context.Context
	index       int // of the loop
	scope       Scope
	it          Iteration // of a turn that failed, for the failure hook (see turn); else nil
	start       time.Time // of the turn in flight
	next        time.Time // when set, the start of the next turn: the end of one that ran just before
	due         time.Time // the scheduled run the next turn is, if any
}

func (w *Worker) newRunner(ctx context.Context, index int) *runner {
	return &runner{w: w, sl: &w.stats.slots[index], done: ctx.Done(), obs: w.obs,
		ctx: ctx, log: w.log, cleanupBase: context.WithoutCancel(ctx), index: index}
}

// setState records the loop's state and tells the observer of a change.
func (r *runner) setState(st State) {
	old := State(r.sl.state.Load())
	if old == st {
		return
	}
	r.sl.state.Store(int32(st))
	if r.obs != nil {
		r.obs.StateChange(r.w.name, r.index, old, st)
	}
}

// A turn runs one iteration in three calls, made by the loop itself:
//
//	ictx := r.begin()
//	err := r.iterate(ictx)
//	out, end, err := r.end(ictx, err)
//
// so that while an iteration runs, its loop's stack holds as few frames as it
// can, and a stopping loop unwinds only those.

// begin starts a turn: it records the start and returns the iteration's
// context.
func (r *runner) begin() context.Context {
	start := r.next // one clock read per turn when turns run back to back
	if start.IsZero() {
		start = time.Now()
	}
	r.next = time.Time{}
	r.start = start
	r.sl.started.Store(start.UnixNano())
	r.setState(StateRunning)
	// Asking the handler on every turn would cost the hot path a few
	// percent; a level change is seen within 1024 turns.
	if r.turns%1024 == 0 {
		r.debug = r.log.Enabled(r.ctx, slog.LevelDebug)
	}
	r.turns++
	if r.debug {
		r.logStarted()
	}
	ictx := r.ctx
	if !r.due.IsZero() {
		ictx = context.WithValue(ictx, dueKey{}, r.due)
	}
	if r.obs != nil {
		ictx = r.obs.IterationStart(ictx, r.event())
	}
	return ictx
}

// iterate runs the turn's iteration under ctx, turning a panic into a
// *PanicError.
func (r *runner) iterate(ctx context.Context) (err error) {
	if r.w.build != nil || r.w.cfg.timeout != 0 {
		return r.turn(ctx)
	}
	defer func() { // the hot path: no allocation
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return r.w.fn(ctx)
}

// end finishes the turn whose iteration ran under ictx and returned err. It
// counts the iteration, unless it failed: that is for fail. It returns the
// outcome, when the iteration ended, and the error that matters for the
// outcome. A turn cut short by shutdown is timed only to be logged or
// observed: when thousands of loops stop at once, each clock read adds up.
func (r *runner) end(ictx context.Context, err error) (Result, time.Time, error) {
	res, rerr := r.outcome(err)
	var end time.Time
	if res != ResultShutdown || r.debug || r.obs != nil {
		end = time.Now()
	}
	if r.debug {
		r.logFinished(res, end.Sub(r.start), err)
	}
	if r.obs != nil {
		r.countObserved(ictx, res, err, end)
	} else {
		r.count(res, end)
	}
	return res, end, rerr
}

// outcome tells what a turn whose iteration returned err came to, and the
// error that matters for it.
func (r *runner) outcome(err error) (Result, error) {
	if err == nil {
		return ResultSuccess, nil
	}
	// Shutdown is not a failure, whatever the iteration returned.
	if isDone(r.done) {
		return ResultShutdown, nil
	}
	if serr, ok := asStop(err); ok {
		return ResultStopped, serr
	}
	if errors.Is(err, ErrNoWork) {
		return ResultNoWork, nil
	}
	return ResultFailure, err
}

// count counts a turn that ended at end with res, unless it failed: that is
// for fail.
func (r *runner) count(res Result, end time.Time) {
	sl := r.sl
	switch res {
	case ResultSuccess:
		sl.successes.Add(1)
		sl.lastSuccess.Store(end.UnixNano())
		r.w.stats.resetConsecutive()
	case ResultNoWork:
		sl.noWork.Add(1)
		r.w.stats.resetConsecutive()
	case ResultShutdown, ResultStopped:
		sl.other.Add(1)
	}
}

// countObserved is count with an observer.
func (r *runner) countObserved(ictx context.Context, res Result, err error, end time.Time) {
	ev := r.event() // before the turn is counted
	r.count(res, end)
	r.obs.IterationEnd(ictx, ev, IterationResult{Result: res, Err: err, Duration: end.Sub(r.start)})
}

// event describes the iteration in flight, for the observer.
func (r *runner) event() IterationEvent {
	return IterationEvent{Worker: r.w.name, Loop: r.index, Iteration: r.sl.count() + 1, Start: r.start}
}

func (r *runner) logStarted() {
	r.log.LogAttrs(r.ctx, slog.LevelDebug, "iteration started", slog.Uint64("iteration", r.sl.count()+1))
}

func (r *runner) logFinished(res Result, d time.Duration, err error) {
	r.log.LogAttrs(r.ctx, slog.LevelDebug, "iteration finished", slog.Uint64("iteration", r.sl.count()+1),
		slog.Duration("duration", d), slog.Any("err", err))
	if res == ResultShutdown && !isControl(err) {
		r.log.LogAttrs(r.ctx, slog.LevelDebug, "iteration ended by shutdown", slog.Any("err", err))
	}
}

// loop is one loop of a worker without a schedule: it runs turns until ctx is
// done or the worker must end, and returns Run's result.
func (w *Worker) loop(r *runner) error {
	defer r.stopTimer()
	var (
		attempt int           // consecutive failures of this loop
		idle    time.Duration // the latest idle wait, 0 after work
	)
	for {
		if isDone(r.done) {
			return nil
		}
		ictx := r.begin()
		err := r.iterate(ictx)
		out, end, err := r.end(ictx, err)
		switch out {
		case ResultSuccess:
			attempt, idle = 0, 0
			r.next = end
			continue
		case ResultShutdown:
			return nil
		case ResultStopped:
			return err
		case ResultNoWork:
			attempt = 0
			idle = min(max(w.cfg.idleMin, 2*idle), w.cfg.idleMax)
			r.setState(StateIdle)
			if r.waitOnGrid(idle, true) == waitDone {
				return nil
			}
			continue
		}
		attempt++
		if stop, err := r.failAndWait(err, attempt, end); stop {
			return err
		}
	}
}

// failAndWait handles a failure, then backs off. It reports whether the
// worker must end instead, and with which error: the hook's or the
// escalation's, or nil when the context ended during the wait.
func (r *runner) failAndWait(err error, attempt int, now time.Time) (bool, error) {
	wait, stop, serr := r.fail(err, attempt, now)
	if stop {
		return true, serr
	}
	r.setState(StateBackingOff)
	return r.waitOnGrid(wait, false) == waitDone, nil
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

// isControl reports whether err only steers the loop.
func isControl(err error) bool {
	if errors.Is(err, ErrNoWork) {
		return true
	}
	_, ok := asStop(err)
	return ok
}

// call runs fn, turning a panic into a *PanicError.
func call(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return fn(ctx)
}

// turn runs one iteration with what the fast path leaves out: a Continuous
// build and its scope, and the iteration's deadline. When the turn ends with
// an error, it keeps the Iteration built, if any, in r.it for the failure
// hook, which lets it go.
func (r *runner) turn(ctx context.Context) (err error) {
	w, scope := r.w, &r.scope
	var it Iteration
	ictx := ctx
	if w.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ictx, cancel = context.WithTimeout(ctx, w.cfg.timeout)
		defer cancel()
	}
	if w.build == nil {
		err = call(ictx, w.fn)
	} else {
		it, err = w.buildAndRun(ictx, scope)
	}
	if ictx != ctx && ictx.Err() != nil && ctx.Err() == nil {
		if _, stop := asStop(err); !stop {
			if errors.Is(err, ErrNoWork) {
				err = nil // late is a failure, not an idle turn
			}
			err = &timeoutError{timeout: w.cfg.timeout, err: err}
		}
	}
	if w.build != nil {
		if cerr := scope.release(r.cleanupBase, w.cfg.cleanupTimeout); cerr != nil {
			err = joinCleanup(err, cerr)
		}
	}
	if err != nil && !errors.Is(err, ErrNoWork) {
		r.it = it
	}
	return err
}

// buildAndRun builds a Continuous turn's Iteration and runs it, turning a
// panic in either into a *PanicError.
func (w *Worker) buildAndRun(ctx context.Context, scope *Scope) (it Iteration, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	if it, err = w.build(ctx, scope); err != nil {
		return it, err
	}
	if it == nil {
		return nil, errors.New("backi: Continuous build returned a nil Iteration and no error")
	}
	return it, it.Run(ctx)
}

// joinCleanup adds cleanup errors to a turn's result. Cleanup errors make the
// turn a failure, unless it asked to stop: then Run returns them too.
func joinCleanup(err, cerr error) error {
	if serr, ok := asStop(err); ok {
		return Stop(errors.Join(serr, cerr))
	}
	if err == nil || errors.Is(err, ErrNoWork) {
		return cerr
	}
	return errors.Join(err, cerr)
}

// fail records a failure, asks the failure hook and the escalation policy what
// to do, and logs it. It returns the wait before the next turn, or stop and
// Run's result.
func (r *runner) fail(err error, attempt int, now time.Time) (time.Duration, bool, error) {
	w, sl, ctx, log := r.w, r.sl, r.ctx, r.log
	it := r.it
	r.it = nil
	sl.failures.Add(1)
	sl.lastFailure.Store(now.UnixNano())
	w.stats.lastErr.Store(&errorBox{err})
	w.stats.consecutive.Add(1)

	f := Failure{Worker: w.name, Err: err, Attempt: attempt, Wait: w.cfg.backoff.Wait(attempt), Logger: log}
	wait := f.Wait
	var hook func(context.Context, Failure) (time.Duration, error)
	if h, ok := it.(FailureHandler); ok {
		hook = h.OnFailure
	} else {
		hook = w.cfg.onFailure
	}
	rec := failureRecord{err: err, iteration: sl.count(), duration: now.Sub(time.Unix(0, sl.started.Load())), attempt: attempt}
	if hook != nil {
		hwait, herr := callHook(ctx, hook, f)
		var pe *PanicError
		switch {
		case errors.As(herr, &pe) && pe == herr:
			log.LogAttrs(ctx, slog.LevelError, "failure hook panicked", slog.Any("err", herr), slog.String("stack", string(pe.Stack)))
		case herr != nil:
			if serr, ok := asStop(herr); ok {
				herr = serr
			}
			w.failLog.write(ctx, log, rec, now)
			return 0, true, herr
		default:
			wait = max(hwait, 0)
		}
	}
	if w.esc.record(now) {
		p := w.esc.policy
		w.failLog.write(ctx, log, rec, now)
		return 0, true, &EscalationError{Worker: w.name, Failures: p.failures, Window: p.window, Action: p.action, Err: err}
	}
	rec.wait = wait
	w.failLog.write(ctx, log, rec, now)
	return wait, false, nil
}

func callHook(ctx context.Context, hook func(context.Context, Failure) (time.Duration, error), f Failure) (wait time.Duration, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return hook(ctx, f)
}

// waitResult says how a wait ended.
type waitResult int

const (
	waitDone    waitResult = iota // the loop's context ended
	waitElapsed                   // the time was up
	waitWoken                     // Wake was called
)

// wait blocks, from now, until until, or until the loop's context ends or,
// when wakeable, Wake is called. A wait that is already over ends at once; it
// consumes a pending Wake, since a run is about to happen anyway.
//
// Every wait is a receive on two channels: the loop's context and the slot's
// signal, which both the wait's timer and Wake feed. A token may outlive the
// wait it was meant for, so each one is checked against the deadline and the
// woken flag.
func (r *runner) wait(now, until time.Time, wakeable bool) waitResult {
	sl := r.sl
	d := until.Sub(now)
	if d <= 0 {
		if wakeable {
			sl.woken.Store(false)
		}
		if isDone(r.done) {
			return waitDone
		}
		return waitElapsed
	}
	if wakeable && sl.woken.Swap(false) {
		return waitWoken
	}
	deadline := now.Add(d) // on now's monotonic clock, as the timer is
	if r.timer == nil {
		r.timer = time.AfterFunc(d, sl.poke)
	} else {
		r.timer.Reset(d)
	}
	for {
		select {
		case <-r.done:
			return waitDone
		case <-sl.signal:
			if wakeable && sl.woken.Swap(false) {
				r.timer.Stop()
				return waitWoken
			}
			if !time.Now().Before(deadline) {
				return waitElapsed
			}
		}
	}
}

// waitOnGrid waits for d after a failure or ErrNoWork, ending on the grain
// grid (see WaitGrain).
func (r *runner) waitOnGrid(d time.Duration, wakeable bool) waitResult {
	now := time.Now()
	return r.wait(now, now.Add(aligned(now, d)), wakeable)
}

// aligned returns how long a wait of d that starts at now lasts once it ends
// on the grain grid (see WaitGrain): never shorter than d, at most d/16
// longer.
func aligned(now time.Time, d time.Duration) time.Duration {
	g := grain(d / 16)
	if g == 0 {
		return d
	}
	end := now.Add(d)
	if over := end.Sub(end.Truncate(g)); over > 0 {
		end = end.Add(g - over)
	}
	return end.Sub(now)
}

// grain returns the largest of 1, 2 or 5 times a power of ten from 1 ms to
// WaitGrain that is at most limit, or 0 if none is.
func grain(limit time.Duration) time.Duration {
	var g time.Duration
	for step := time.Millisecond; step <= WaitGrain; step *= 10 {
		for _, m := range [...]time.Duration{1, 2, 5} {
			if c := m * step; c <= limit && c <= WaitGrain {
				g = c
			}
		}
	}
	return g
}

// stopTimer stops the loop's wait timer, if it has one.
func (r *runner) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
	}
}
