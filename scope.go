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
// base supplies the cleanups' context values.
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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(base), timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return fn(ctx)
}
