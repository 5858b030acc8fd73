package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/backi-go/backi/internal/testhook"
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

// Worker runs iterations on repeat, for as long as its Run is running. Make one
// with [Loop] or [Continuous]; the zero Worker is not usable, and its Run
// returns an error. A Worker is a [Service], so a [Host] can run it. Its
// methods are safe for concurrent use.
type Worker struct {
	name  string
	fn    func(context.Context) error                      // set by Loop
	build func(context.Context, *Scope) (Iteration, error) // set by Continuous

	cfg    config
	cfgErr error // reported by Run

	stats    stats  // what Status reads
	schedule string // the schedule's description, for Status
	pauses   pauses
	esc      escalation
	failLog  failureLog
}

// Loop returns a worker that calls fn on repeat. fn's result has the meaning
// described at [Iteration].
func Loop(name string, fn func(ctx context.Context) error, opts ...Option) *Worker {
	w := &Worker{name: name, fn: fn}
	w.setup(opts, fn == nil, "iteration")
	return w
}

// Continuous returns a worker that builds a fresh Iteration for every turn and
// runs it. What build registers with s.Defer is released after the turn, in
// reverse order, always. An error or panic from build is a failure of the turn.
func Continuous(name string, build func(ctx context.Context, s *Scope) (Iteration, error), opts ...Option) *Worker {
	w := &Worker{name: name, build: build}
	w.setup(opts, build == nil, "build")
	return w
}

// Name returns the worker's name.
func (w *Worker) Name() string { return w.name }

// Status returns a snapshot of the worker. It never blocks.
func (w *Worker) Status() Status {
	s := w.stats.snapshot(w.name)
	s.Schedule = w.schedule
	return s
}

// Wake ends the idle wait (after ErrNoWork, or before a scheduled run) of each
// of the worker's loops at once; a loop that is not idle skips its next idle
// wait instead. Wake does not cut short a backoff wait after a failure. On a
// paused worker it does nothing, and the worker logs that it ignored it. It
// never blocks, and may be called before Run.
func (w *Worker) Wake() {
	if w.stats.paused.Load() {
		// Ignored, and said so by the first loop, which the poke tells.
		w.stats.wakeIgnored.Store(true)
		w.stats.slots[0].poke()
		return
	}
	for i := range w.stats.slots {
		w.stats.slots[i].wake()
	}
}

// WakeOne is Wake for one loop: it ends the idle wait of one idle loop of
// the worker, or, when none is idle, makes one loop skip its next idle wait.
// Successive calls pick loops in turn. Call it when one unit of work
// arrives, as a job queue's notification of one job does, so that the other
// loops stay idle. It never blocks.
func (w *Worker) WakeOne() {
	if w.stats.paused.Load() || len(w.stats.slots) <= 1 {
		w.Wake()
		return
	}
	n := len(w.stats.slots)
	from := int(w.stats.nextWake.Add(1) % uint32(n))
	pick := from
	for i := range n {
		if State(w.stats.slots[(from+i)%n].state.Load()) == StateIdle {
			pick = (from + i) % n
			break
		}
	}
	w.stats.slots[pick].wake()
}

// Pause stops the worker from starting iterations until Resume: the
// iterations in flight finish, and each loop then waits in StatePaused,
// whatever it was waiting for (an idle, backoff or scheduled wait ends at
// once). Scheduled runs that fall due while paused do not run; Resume runs
// at most one of them. A paused worker still stops at once when its Run's
// context ends. With WithLeader, a paused worker still campaigns and keeps
// the terms it wins, running nothing, so that no other replica runs the
// worker meanwhile: without a ControlStore, a pause on a replica that does
// not lead stops the work everywhere once that replica comes to lead. Pause
// never blocks and may be called before Run. On a paused worker it changes
// nothing here, but still records the pause in the worker's ControlStore, if
// any (see WithControlStore). Status().Paused reports it at once.
func (w *Worker) Pause() { w.ask(true) }

// Resume undoes Pause: each loop starts again as Run starts it, with a turn
// at once or, with a schedule, at the next run, or a catch-up run now if runs
// were missed (see WithSkipMissed); the run of WithRunAtStart is not
// repeated once the loop has had a turn. It never blocks. On a worker that
// is not paused it changes nothing here, but still records the resume in the
// worker's ControlStore, if any, which resumes the replicas that follow it.
func (w *Worker) Resume() { w.ask(false) }

// setPaused sets what the loops obey, and tells them.
func (w *Worker) setPaused(p bool) {
	if w.stats.paused.Swap(p) == p {
		return
	}
	for i := range w.stats.slots {
		w.stats.slots[i].poke()
	}
}

// setup applies the options and checks the configuration, for Run to
// report; noFn tells that the function, named fn, is nil.
func (w *Worker) setup(opts []Option, noFn bool, fn string) {
	w.cfgErr = w.configure(opts, noFn, fn)
	w.stats.slots = make([]slot, max(w.cfg.concurrency, 1))
	for i := range w.stats.slots {
		w.stats.slots[i].signal = make(chan struct{}, 1)
	}
	w.esc.policy = w.cfg.escalation
	w.stats.paused.Store(w.cfg.paused)
	w.pauses.wake = make(chan struct{}, 1)
	w.schedule = describe(w.cfg.schedule)
}

// describe returns what s's String method says, "custom" when it has none
// or it panics, and "" for no schedule.
func describe(s Schedule) string {
	if s == nil {
		return ""
	}
	str, ok := s.(fmt.Stringer)
	if !ok {
		return "custom"
	}
	text, err := protect(func() (string, error) { return str.String(), nil })
	if err != nil {
		return "custom"
	}
	return text
}

func (w *Worker) configure(opts []Option, noFn bool, fn string) error {
	if w.name == "" {
		return errors.New("backi: worker name is empty")
	}
	if noFn {
		return fmt.Errorf("backi: worker %q: the %s function is nil", w.name, fn)
	}
	if err := w.cfg.init(opts); err != nil {
		return fmt.Errorf("backi: worker %q: %w", w.name, err)
	}
	if err := w.cfg.checkSchedule(); err != nil {
		return fmt.Errorf("backi: worker %q: %w", w.name, err)
	}
	return nil
}

// check reports the worker's configuration error, if any, without running it.
func (w *Worker) check() error {
	if w == nil || w.stats.slots == nil {
		return errors.New("backi: the Worker was not made by Loop or Continuous")
	}
	return w.cfgErr
}

// Run runs iterations until the worker ends, and returns only when none is in
// flight. It returns nil once ctx is done (cancelled or past its deadline), the
// error given to Stop when an iteration returns one (nil for Stop(nil)), an
// *EscalationError when the escalation policy gives up, and, before any
// iteration runs, an error naming the option when the configuration is
// invalid or Run is already running.
//
// A worker with one loop runs it on the goroutine that calls Run; with
// WithConcurrency, each loop has a goroutine of its own, which Run waits for.
// An iteration (or another callback on a loop's goroutine) that calls
// runtime.Goexit, as t.FailNow does, ends the worker: its turn fails with
// ErrGoexit after its cleanups ran, and Run returns that error; but on the
// goroutine that called Run, Go ends the goroutine instead, so Run does not
// return (a Host running the worker reports the error).
func (w *Worker) Run(ctx context.Context) error {
	if err := w.claim(ctx); err != nil {
		return err
	}
	r := w.newRun(ctx)
	defer r.end()
	r.started()
	if w.cfg.control != nil {
		defer r.follow()()
	}
	if w.cfg.elector != nil {
		r.err = r.lead()
	} else {
		_, r.err = r.runLanes(ctx, nil)
	}
	r.returned = true
	return r.err
}

// claim checks the worker and claims it for one Run. A misconfigured worker
// is left failed.
func (w *Worker) claim(ctx context.Context) error {
	if err := w.check(); err != nil {
		if w != nil && w.stats.slots != nil {
			w.stats.lifecycle.CompareAndSwap(int32(StateNew), int32(StateFailed))
		}
		return err
	}
	if ctx == nil {
		return fmt.Errorf("backi: worker %q: Run(nil): the context is nil", w.name)
	}
	if !w.stats.begin() {
		return fmt.Errorf("backi: worker %q is already running", w.name)
	}
	return nil
}

// end, deferred by Run, reports the end of the Run and releases the worker:
// the lifecycle's last store comes after everything Run started has returned,
// and from then on another Run may begin. It runs even when a callback on
// Run's goroutine calls runtime.Goexit, and reports that.
func (r *run) end() {
	err := r.err
	if !r.returned {
		err = r.goexited()
	}
	r.w.stats.lifecycle.Store(int32(r.stopped(err)))
}

// goexited returns the error of a Run that runtime.Goexit ended: the lone
// loop's, if the Goexit came from it (see lane.exited), with the errors of
// the cleanups it cut short.
func (r *run) goexited() error {
	if l := r.lanes[0]; errors.Is(l.err, ErrGoexit) {
		return l.err
	}
	return fmt.Errorf("backi: worker %q: %w", r.w.name, ErrGoexit)
}

// run is what one call of Run uses besides the worker's configuration. It
// lives as long as that call.
type run struct {
	w     *Worker
	ctx   context.Context
	log   *slog.Logger // the worker's logger, with its name; contained
	obs   Observer     // contained; nil for none
	stuck time.Duration
	began time.Time
	lanes []*lane

	err      error // Run's result
	returned bool  // the loops have returned: Run ends normally, with err

	controlFailing bool // the ControlStore failed, and that was logged
}

// newRun settles what the Run uses, from the options or else from ctx, where a
// Host puts its own WithLogger, WithObserver and WithStuckAfter.
func (w *Worker) newRun(ctx context.Context) *run {
	r := &run{w: w, ctx: ctx, stuck: w.cfg.stuckAfter, began: time.Now()}
	log := w.cfg.logger
	if log == nil {
		log = loggerFrom(ctx)
	}
	r.log = slog.New(contained(log.Handler()).WithAttrs([]slog.Attr{slog.String("worker", w.name)}))
	if d, ok := ctx.Value(stuckKey{}).(time.Duration); ok && r.stuck == 0 {
		r.stuck = d
	}
	obs := w.cfg.observer
	if o, ok := ctx.Value(observerKey{}).(Observer); ok && obs == nil {
		obs = o
	}
	if o := w.hooked(ctx); o != nil {
		if obs == nil {
			obs = o
		} else {
			obs = Observers(obs, o)
		}
	}
	if obs != nil {
		r.obs = &safeObserver{o: obs, log: r.log}
	}
	r.lanes = make([]*lane, len(w.stats.slots))
	for i := range r.lanes {
		r.lanes[i] = &lane{r: r, w: w, sl: &w.stats.slots[i], index: i}
	}
	return r
}

// hooked returns the observer that package backitest put in ctx for this
// worker's Run, if any (see package testhook).
func (w *Worker) hooked(ctx context.Context) Observer {
	h, ok := ctx.Value(testhook.Key{}).(testhook.Hook)
	if !ok || h.Worker != any(w) {
		return nil
	}
	o, _ := h.Observer.(Observer)
	return o
}

// started logs the start of the Run.
func (r *run) started() {
	if r.log.Enabled(r.ctx, slog.LevelInfo) {
		r.log.LogAttrs(r.ctx, slog.LevelInfo, "worker started", slog.Int("concurrency", len(r.lanes)))
	}
}

// stopped reports the end of a Run that returns err, and returns the state
// it ends in.
func (r *run) stopped(err error) State {
	r.w.failLog.flush(r.ctx, r.log)
	state, level := StateStopped, slog.LevelInfo
	if err != nil {
		state, level = StateFailed, slog.LevelError
	}
	for _, l := range r.lanes {
		l.setState(state)
	}
	if r.log.Enabled(r.ctx, level) {
		r.logStopped(level, err)
	}
	return state
}

func (r *run) logStopped(level slog.Level, err error) {
	ran := slog.Duration("ran", time.Since(r.began))
	if err != nil {
		r.log.LogAttrs(r.ctx, level, "worker stopped", ran, slog.Any("err", err))
		return
	}
	r.log.LogAttrs(r.ctx, level, "worker stopped", ran)
}

// runLanes runs the worker's loops until ctx is done, the term they run
// under (nil for none) is lost (then it reports lost) or one of the loops
// ends the worker, and returns Run's result. A lone loop runs on the
// caller's goroutine; several run on goroutines of their own, and the first
// to end the worker ends the others.
func (r *run) runLanes(ctx context.Context, term *held) (wasLost bool, err error) {
	var lost <-chan struct{}
	if term != nil {
		lost = term.done
	}
	lctx, cancel := ctx, noCancel
	if len(r.lanes) > 1 || term != nil {
		lctx, cancel = context.WithCancelCause(ctx)
	}
	defer cancel(nil)
	if lost != nil || r.stuck > 0 {
		defer r.watch(lctx, cancel, lost)()
	}
	for _, l := range r.lanes {
		l.ctx, l.done, l.pace = lctx, lctx.Done(), r.w.newPacer()
		l.term, l.trusted, l.lose, l.turned = term, time.Time{}, cancel, false
	}
	if len(r.lanes) == 1 {
		r.lanes[0].run()
		err = r.lanes[0].err
	} else {
		err = r.fanOut(cancel)
	}
	for _, l := range r.lanes {
		if l.stopped {
			return false, err // the worker ended itself, whatever else happened
		}
	}
	return term != nil && context.Cause(lctx) == ErrLeadershipLost, err
}

// watch starts what watches the loops while they run under ctx: for lost,
// which cancels ctx with ErrLeadershipLost, and for stuck iterations. It
// returns the function that stops the watchers and waits for them.
func (r *run) watch(ctx context.Context, cancel context.CancelCauseFunc, lost <-chan struct{}) (stop func()) {
	var watchers sync.WaitGroup
	if lost != nil {
		watchers.Go(func() {
			select {
			case <-lost:
				cancel(ErrLeadershipLost)
			case <-ctx.Done():
			}
		})
	}
	done := make(chan struct{})
	if r.stuck > 0 {
		watchers.Go(func() { r.watchStuck(done) })
	}
	return func() {
		close(done)
		cancel(nil) // ends the leadership watcher, once the loops have ended
		watchers.Wait()
	}
}

// noCancel is the cancel function of a context that needs none.
func noCancel(error) {}

// fanOut runs each of the worker's loops on a goroutine of its own, and
// returns the first error one of them ended with. The first loop to end
// cancels the others.
func (r *run) fanOut(cancel context.CancelCauseFunc) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, l := range r.lanes {
		wg.Go(func() {
			defer func() { // even after runtime.Goexit
				mu.Lock()
				if first == nil {
					first = l.err
				}
				mu.Unlock()
				cancel(nil)
			}()
			l.run()
		})
	}
	wg.Wait()
	return first
}

// watchStuck reports the iterations that run longer than the stuck
// threshold, until stop is closed.
func (r *run) watchStuck(stop <-chan struct{}) {
	normal := false
	defer func() {
		if !normal {
			r.log.LogAttrs(r.ctx, slog.LevelError, "stuck iterations are no longer reported: an observer called runtime.Goexit")
		}
	}()
	r.tickStuck(stop)
	normal = true
}

// tickStuck checks for stuck iterations every tenth of the threshold, until
// stop is closed.
func (r *run) tickStuck(stop <-chan struct{}) {
	t := time.NewTicker(max(r.stuck/10, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			r.checkStuck(now)
		}
	}
}

// checkStuck reports the iterations that have run longer than the stuck
// threshold, once each.
func (r *run) checkStuck(now time.Time) {
	for _, l := range r.lanes {
		if ran, ok := l.markStuck(now, r.stuck); ok {
			r.log.LogAttrs(r.ctx, slog.LevelWarn, "iteration stuck", slog.Int("loop", l.index),
				slog.Uint64("iteration", l.sl.count()+1), slog.Duration("running", ran))
		}
	}
}
