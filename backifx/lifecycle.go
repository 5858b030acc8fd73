package backifx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backi-go/backi"
	"go.uber.org/fx"
)

// errStopping is the cause with which the stop hook cancels the host's
// context; the host logs it as the reason it stops.
var errStopping = errors.New("backifx: the fx app is stopping")

// startPoll is how often the start hook looks whether the host has started
// its services: the host tells it only through Host.State, an atomic read.
const startPoll = time.Millisecond

// maxMargin bounds how long before a hook's deadline the hook gives up
// waiting for the host (see beforeDeadline).
const maxMargin = 200 * time.Millisecond

// beforeDeadline returns a channel that receives shortly before ctx's
// deadline, a fifth of the time left or maxMargin, whichever is less, and
// the function that releases its timer. Without a deadline the channel is
// nil. fx reports a hook's error only when the hook returns before its
// context ends (otherwise only the context's error), and runs the app's
// other hooks after it.
func beforeDeadline(ctx context.Context) (<-chan time.Time, func()) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, func() {}
	}
	budget := time.Until(deadline)
	t := time.NewTimer(budget - min(budget/5, maxMargin))
	return t.C, func() { t.Stop() }
}

// binding ties one host to the app's lifecycle.
type binding struct {
	host       *backi.Host
	services   []backi.Service // as fx gave them
	shutdowner fx.Shutdowner

	mu    sync.Mutex
	added bool    // the services were added to the host, at the first start
	named []named // the services in the order they were added
	cur   *running
}

// named is a service with the name it gave when it was added.
type named struct {
	backi.Service
	name string
	ok   bool // Name returned, rather than panicked
}

// running is one Run of the host, from a start hook to the end of Run.
type running struct {
	cancel context.CancelCauseFunc
	ended  chan struct{} // closed when Run has returned
	err    error         // Run's result, set before ended is closed

	mu    sync.Mutex
	phase phase
	done  bool // Run has returned
}

// phase is where the app is, as the hooks of one running tell it.
type phase int

const (
	starting phase = iota // the start hook waits for the host
	started               // the start hook returned nil: an end of Run on its own shuts the app down
	stopping              // the stop hook, or a failed start, cancelled the host
)

// start is the OnStart hook: it runs the host on a goroutine of its own and
// returns once the host has started its services, or with the host's error
// when it cannot.
func (b *binding) start(ctx context.Context) error {
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	r := &running{cancel: cancel, ended: make(chan struct{})}
	b.mu.Lock()
	b.cur = r
	b.mu.Unlock()
	go b.run(runCtx, r)

	if !b.awaitStart(ctx, r) {
		select {
		case <-r.ended:
			return b.startedThenEnded(r)
		default:
		}
		stoppingAlready := b.host.State() == backi.HostStopping // before the cancellation makes it so
		r.setPhase(stopping)
		cancel(errors.New("backifx: the app's start deadline came"))
		if stoppingAlready {
			return b.stoppedAsItStarted()
		}
		return errors.New("backifx: the host had not started its services when the app's start deadline came " +
			"(a service's Name method, or the check of its configuration, did not return)")
	}
	r.mu.Lock()
	r.phase = started
	done := r.done
	r.mu.Unlock()
	if done { // Run ended before started was set, and left its end to the hook
		return b.startedThenEnded(r)
	}
	return nil
}

// awaitStart waits until the host runs its services, and reports whether it
// does; it gives up when Run ends first, or shortly before ctx's deadline.
func (b *binding) awaitStart(ctx context.Context, r *running) bool {
	giveUp, stopTimer := beforeDeadline(ctx)
	defer stopTimer()
	tick := time.NewTicker(startPoll)
	defer tick.Stop()
	for {
		select {
		case <-r.ended:
			return false
		case <-giveUp:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
			if b.host.State() == backi.HostRunning {
				return true
			}
		}
	}
}

// stoppedAsItStarted returns the start hook's error when a service ended as
// the host started, and the host was still stopping the others at the
// start deadline: Run's error is not known yet, so it names the workers
// that failed, with their last errors.
func (b *binding) stoppedAsItStarted() error {
	var failed []string
	for _, w := range b.host.Workers() {
		if s := w.Status(); s.State == backi.StateFailed {
			msg := fmt.Sprintf("%q", w.Name())
			if s.LastError != nil {
				msg += ": " + s.LastError.Error()
			}
			failed = append(failed, msg)
		}
	}
	const msg = "backifx: a service ended as the host started, and the host was still stopping the others when the app's start deadline came"
	if len(failed) == 0 {
		return errors.New(msg + " (no worker failed: the service that ended is another, or ended without an error)")
	}
	return fmt.Errorf("%s; failed: %s", msg, strings.Join(failed, "; "))
}

// startedThenEnded reports a Run that ended while the start hook waited:
// with an error, the start fails; without one (every service ended at
// once, without an error), the app starts and is shut down at once.
func (b *binding) startedThenEnded(r *running) error {
	if r.err != nil {
		return fmt.Errorf("backifx: the host did not start: %w", r.err)
	}
	b.shutdown(nil)
	return nil
}

// stop is the OnStop hook: it cancels the host and waits for Run to return,
// until shortly before ctx's deadline.
func (b *binding) stop(ctx context.Context) error {
	b.mu.Lock()
	r := b.cur
	b.mu.Unlock()
	if r == nil { // fx calls the stop hook only after the start hook succeeded
		return nil
	}
	r.setPhase(stopping)
	r.cancel(errStopping)

	begun := time.Now()
	giveUp, stopTimer := beforeDeadline(ctx)
	defer stopTimer()
	select {
	case <-r.ended:
		return r.result()
	case <-giveUp:
	case <-ctx.Done():
	}
	select {
	case <-r.ended: // at the same time
		return r.result()
	default:
	}
	return b.late(time.Since(begun))
}

// result returns Run's error, for the stop hook.
func (r *running) result() error {
	if r.err != nil {
		return fmt.Errorf("backifx: host: %w", r.err)
	}
	return nil
}

func (r *running) setPhase(p phase) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

// run adds the services to the host at the first start, and runs the host
// until it returns, containing a panic or a runtime.Goexit of what it calls.
func (b *binding) run(ctx context.Context, r *running) {
	err := errors.New("backifx: runtime.Goexit was called while the host started or ran")
	defer func() { b.ended(r, err) }()
	err = contain(func() error {
		b.add()
		return b.host.Run(ctx)
	})
}

// ended records the end of Run, and shuts the app down when the host ended
// on its own after the app started.
func (b *binding) ended(r *running, err error) {
	r.err = err
	close(r.ended)
	r.mu.Lock()
	r.done = true
	p := r.phase
	r.mu.Unlock()
	if p == started {
		b.shutdown(err)
	}
}

// shutdown asks fx to stop the app, with exit code 1 after an error. The
// app's Shutdowner may be one of the user's (fx.Decorate): its panic is
// written to standard error, as there is no logger to tell.
func (b *binding) shutdown(err error) {
	code := 0
	if err != nil {
		code = 1
	}
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(os.Stderr, "backifx: fx.Shutdowner.Shutdown(ExitCode(%d)) panicked: %v\n%s", code, v, debug.Stack())
		}
	}()
	// An error means that a shutdown is already under way: a receiver's
	// channel still holds a signal.
	_ = b.shutdowner.Shutdown(fx.ExitCode(code))
}

// add adds the services to the host, once, in the order of their names; a
// service whose Name panics goes last, for the host to report it.
func (b *binding) add() {
	b.mu.Lock()
	if b.added {
		b.mu.Unlock()
		return
	}
	b.added = true
	b.mu.Unlock()

	list := make([]named, len(b.services))
	for i, s := range b.services {
		list[i] = nameOf(s)
	}
	slices.SortStableFunc(list, func(x, y named) int {
		if x.ok != y.ok {
			if x.ok {
				return -1
			}
			return 1
		}
		return cmp.Compare(x.name, y.name)
	})
	services := make([]backi.Service, len(list))
	for i, n := range list {
		services[i] = n.Service
	}
	b.host.Add(services...)
	b.mu.Lock()
	b.named = list
	b.mu.Unlock()
}

// nameOf asks s its name, containing a panic.
func nameOf(s backi.Service) (n named) {
	n.Service = s
	if s == nil {
		return n
	}
	defer func() {
		if recover() != nil {
			n.name, n.ok = "", false
		}
	}()
	n.name = s.Name()
	n.ok = true
	return n
}

// late returns the stop hook's error when the host was still stopping after
// waited. It names the workers whose Run has not returned. The other
// services' ends are not seen: when no worker runs, one of them still does,
// and they are named in the *backi.ShutdownError; otherwise they are named
// beside it, as unknown.
func (b *binding) late(waited time.Duration) error {
	isWorker := make(map[string]bool)
	var running []string
	for _, w := range b.host.Workers() {
		isWorker[w.Name()] = true
		switch w.Status().State {
		case backi.StateNew, backi.StateStopped, backi.StateFailed:
		default:
			running = append(running, w.Name())
		}
	}
	b.mu.Lock()
	list := b.named
	b.mu.Unlock()
	var others []string
	for _, n := range list {
		if !isWorker[n.name] {
			others = append(others, n.name)
		}
	}
	const prefix = "backifx: the host was still stopping when the app's stop deadline came"
	if len(running) == 0 {
		return fmt.Errorf("%s: %w", prefix, &backi.ShutdownError{Timeout: waited, Running: others})
	}
	err := &backi.ShutdownError{Timeout: waited, Running: running}
	if len(others) == 0 {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	return fmt.Errorf("%s: %w; the end of services that are not workers is not seen, and these may run too: %s",
		prefix, err, strings.Join(others, ", "))
}

// contain calls fn and turns its panic into an error.
func contain(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("backifx: panic while the host started or ran: %v\n%s", v, debug.Stack())
		}
	}()
	return fn()
}
