package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// panic makes the turn a failure, reported with the iteration's error; so
// does a cleanup still running 100 ms past its deadline, which is abandoned:
// left to finish on its own goroutine while the worker goes on.
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
// The cleanups' contexts carry base's values, not its cancellation.
func (s *Scope) release(base context.Context, timeout time.Duration, log *slog.Logger) error {
	base = context.WithoutCancel(base)
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
			if _, ok := err.(*abandonedError); ok {
				log.LogAttrs(base, slog.LevelWarn, "cleanup abandoned", slog.Any("err", err))
			}
			errs = append(errs, err)
		}
	}
}

// cleanupGrace is how long past its deadline a cleanup may run before it is
// abandoned.
const cleanupGrace = 100 * time.Millisecond

// runCleanup runs fn with a context that expires after timeout, on a
// goroutine of its own, so that a cleanup that ignores its context can be
// abandoned: still running cleanupGrace after its deadline, it is left to
// finish in the background, and the turn goes on.
func runCleanup(base context.Context, timeout time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(base, timeout)
	done := make(chan error, 1)
	go callThen(ctx, fn, func(err error) {
		cancel()
		done <- err
	})
	abandon := time.NewTimer(timeout + cleanupGrace)
	defer abandon.Stop()
	select {
	case err := <-done:
		return err
	case <-abandon.C:
		return &abandonedError{timeout: timeout}
	}
}

// abandonedError is the failure of a cleanup that outlived its timeout.
type abandonedError struct{ timeout time.Duration }

func (e *abandonedError) Error() string {
	return fmt.Sprintf("backi: cleanup still running %v after its %v cleanup timeout; abandoned", cleanupGrace, e.timeout)
}

// Unwrap makes errors.Is(err, context.DeadlineExceeded) true.
func (e *abandonedError) Unwrap() error { return context.DeadlineExceeded }
