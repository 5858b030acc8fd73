package backi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Result is how one iteration ended.
type Result int

const (
	// ResultSuccess: the iteration returned nil.
	ResultSuccess Result = iota
	// ResultNoWork: it returned ErrNoWork.
	ResultNoWork
	// ResultFailure: it failed (an error, a panic, a timeout, a failed cleanup).
	ResultFailure
	// ResultStopped: it returned Stop.
	ResultStopped
	// ResultShutdown: the worker was stopping; whatever it returned is not a failure.
	ResultShutdown
)

var resultNames = [...]string{"success", "no_work", "failure", "stopped", "shutdown"}

func (r Result) String() string {
	if r >= 0 && int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// Observer is told what workers do as it happens, for metrics and tracing; see
// WithObserver. Its methods are called synchronously from the worker's loops
// (StateChange also from its stuck check) and must return quickly. They may
// be called concurrently for a worker with several loops.
type Observer interface {
	// IterationStart is called before each iteration. The context it returns
	// is the iteration's, so that a tracer can put its span in it; return ctx
	// itself otherwise.
	IterationStart(ctx context.Context, e IterationEvent) context.Context
	// IterationEnd is called after each iteration, with the context
	// IterationStart returned.
	IterationEnd(ctx context.Context, e IterationEvent, r IterationResult)
	// StateChange is called whenever a loop of a worker changes state: from
	// StateNew (or the state a previous Run ended in) through running, idle,
	// backing off, stuck, campaigning and paused, to StateStopped or
	// StateFailed when the worker ends. For each loop, each call's from is
	// the previous call's to, and calls never overlap: a StateChange that
	// blocks holds that loop.
	StateChange(worker string, loop int, from, to State)
}

// IterationEvent identifies one iteration.
type IterationEvent struct {
	Worker string
	// Loop is the loop's index, from 0 (see WithConcurrency).
	Loop int
	// Iteration is the loop's iteration number, from 1.
	Iteration uint64
	Start     time.Time
}

// IterationResult is how an iteration ended.
type IterationResult struct {
	Result   Result
	Err      error // the iteration's error; nil for a success
	Duration time.Duration
}

// WithObserver sets the observer of a worker, or on a host the default of its
// workers that set none. Without one, nothing is called and the loop does not
// allocate. o must not be nil.
func WithObserver(o Observer) SharedOption {
	var err error
	if o == nil {
		err = errors.New("WithObserver(nil): observer is nil")
	}
	return sharedOption{err, func(c *config) { c.observer = o }, func(c *hostConfig) { c.observer = o }}
}

type observerKey struct{}

// Observers returns an Observer that tells each of obs, in order. The
// context IterationStart returns passes from one to the next. A panic in one
// of them does not keep the others from being told; it is raised again
// once they have been.
func Observers(obs ...Observer) Observer { return observers(obs) }

type observers []Observer

func (os observers) IterationStart(ctx context.Context, e IterationEvent) context.Context {
	var p panicked
	for _, o := range os {
		ctx = p.catch(func() context.Context { return o.IterationStart(ctx, e) }, ctx)
	}
	p.raise()
	return ctx
}

func (os observers) IterationEnd(ctx context.Context, e IterationEvent, r IterationResult) {
	var p panicked
	for _, o := range os {
		p.catch(func() context.Context { o.IterationEnd(ctx, e, r); return ctx }, ctx)
	}
	p.raise()
}

func (os observers) StateChange(worker string, loop int, from, to State) {
	var p panicked
	for _, o := range os {
		p.catch(func() context.Context { o.StateChange(worker, loop, from, to); return nil }, nil)
	}
	p.raise()
}

// panicked keeps the first panic of the observers that Observers tells.
type panicked struct {
	v   any
	set bool
}

// catch calls fn and returns its result, or keep when fn panics.
func (p *panicked) catch(fn func() context.Context, keep context.Context) (ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			if !p.set {
				p.v, p.set = v, true
			}
			ctx = keep
		}
	}()
	return fn()
}

// raise panics again with the first panic caught, if any.
func (p *panicked) raise() {
	if p.set {
		panic(p.v)
	}
}
