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
// Iteration it returns. Defer is safe for concurrent use.
type Scope struct {
	mu    sync.Mutex
	fns   []func(context.Context) error
	ended bool // released: a later Defer runs its cleanup at once

	base    context.Context // what the cleanups' contexts carry values from
	timeout time.Duration
	log     *slog.Logger
}

// maxLate bounds the cleanups that cleanups register, so that a cleanup that
// registers itself again ends.
const maxLate = 100

func newScope(base context.Context, timeout time.Duration, log *slog.Logger) *Scope {
	return &Scope{base: context.WithoutCancel(base), timeout: timeout, log: log}
}

// Defer registers fn to run when the turn ends. Each cleanup gets a context of
// its own that is not cancelled by shutdown and that expires after the
// worker's cleanup timeout (see [WithCleanupTimeout]). A cleanup's error or
// panic makes the turn a failure, reported with the iteration's error; so
// does a cleanup still running 100 ms past its deadline, which is abandoned:
// left to finish on its own goroutine while the worker goes on, even past
// the end of Run. A cleanup registered after its turn ended runs at once,
// and is logged at Warn. A nil fn is ignored.
func (s *Scope) Defer(fn func(ctx context.Context) error) {
	if fn == nil {
		return
	}
	s.mu.Lock()
	ended := s.ended
	if !ended {
		s.fns = append(s.fns, fn)
	}
	s.mu.Unlock()
	if ended {
		err := bounded(s.base, s.timeout, "cleanup", fn)
		s.log.LogAttrs(s.base, slog.LevelWarn, "cleanup deferred after its turn ended: ran at once", slog.Any("err", err))
	}
}

// release runs the registered cleanups, last registered first, and ends the
// scope. A cleanup registered by a cleanup runs too, up to maxLate of them.
func (s *Scope) release() error {
	var errs []error
	s.mu.Lock()
	budget := len(s.fns) + maxLate
	s.mu.Unlock()
	for ran := 0; ; ran++ {
		s.mu.Lock()
		n := len(s.fns)
		if n == 0 || ran == budget {
			s.ended, s.fns = true, nil
			s.mu.Unlock()
			if n > 0 {
				errs = append(errs, fmt.Errorf("backi: %d cleanups not run: cleanups registered more than %d cleanups", n, maxLate))
			}
			return errors.Join(errs...)
		}
		fn := s.fns[n-1]
		s.fns[n-1] = nil
		s.fns = s.fns[:n-1]
		s.mu.Unlock()
		if err := bounded(s.base, s.timeout, "cleanup", fn); err != nil {
			if _, ok := err.(*abandonedError); ok {
				s.log.LogAttrs(s.base, slog.LevelWarn, "cleanup abandoned", slog.Any("err", err))
			}
			errs = append(errs, err)
		}
	}
}
