package backi

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultCleanupTimeout bounds each scope cleanup when no [WithCleanupTimeout]
// option is given.
const DefaultCleanupTimeout = 5 * time.Second

// Scope holds what one turn of a [Continuous] worker acquired. Cleanups
// registered with Defer run after the turn, in reverse order of registration,
// whatever the turn's outcome: success, error, panic or cancellation.
//
// A Scope belongs to one turn: use it from the build function and from the
// Iteration it returns, not after the iteration has returned. Defer is safe
// for concurrent use within the turn.
type Scope struct {
	mu  sync.Mutex
	fns []func(context.Context) error
}

// Defer registers fn to run when the turn ends. Each cleanup gets a context of
// its own that is not cancelled by shutdown and that expires after the
// worker's cleanup timeout (see [WithCleanupTimeout]). A cleanup's error or
// panic makes the turn a failure, reported with the iteration's error.
// A nil fn is ignored.
func (s *Scope) Defer(fn func(ctx context.Context) error) {
	if fn == nil {
		return
	}
	s.mu.Lock()
	s.fns = append(s.fns, fn)
	s.mu.Unlock()
}

// release runs the registered cleanups, last registered first, and leaves the
// scope empty for the next turn. A cleanup registered by a cleanup runs too.
// base, which must not be cancellable, supplies the cleanups' context values.
func (s *Scope) release(base context.Context, timeout time.Duration) error {
	var errs []error
	for {
		s.mu.Lock()
		n := len(s.fns)
		if n == 0 {
			s.mu.Unlock()
			return errors.Join(errs...)
		}
		fn := s.fns[n-1]
		s.fns[n-1] = nil
		s.fns = s.fns[:n-1]
		s.mu.Unlock()
		if err := runCleanup(base, timeout, fn); err != nil {
			errs = append(errs, err)
		}
	}
}

func runCleanup(base context.Context, timeout time.Duration, fn func(context.Context) error) (err error) {
	ctx := &cleanupContext{Context: base, deadline: time.Now().Add(timeout)}
	defer ctx.stop()
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return fn(ctx)
}

// cleanupContext is the context of one cleanup: the values of a context that is
// never cancelled, and a deadline. Its Done channel, and the timer that closes
// it, are made only when asked for, so that the many cleanups that never look
// at their context cost no timer.
type cleanupContext struct {
	context.Context // never cancelled
	deadline        time.Time

	mu    sync.Mutex
	done  chan struct{}
	timer *time.Timer
}

func (c *cleanupContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *cleanupContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if d := time.Until(c.deadline); d > 0 {
			c.timer = time.AfterFunc(d, func() { close(c.done) })
		} else {
			close(c.done)
		}
	}
	return c.done
}

// Err is consistent with Done: non-nil exactly when Done is closed. It starts
// no timer.
func (c *cleanupContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if time.Now().Before(c.deadline) {
			return nil
		}
		c.done = make(chan struct{})
		close(c.done)
	}
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *cleanupContext) Value(key any) any { return c.Context.Value(key) }

// stop releases the timer, if Done made one.
func (c *cleanupContext) stop() {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
}
