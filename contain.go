package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/backi-go/backi/internal/safe"
)

// ErrGoexit is the failure of a turn during which user code called
// runtime.Goexit (as t.FailNow does) on a loop's goroutine: the turn's
// cleanups run, the turn counts as a failure, and the worker ends with an
// error matching ErrGoexit (see Worker.Run for the goroutine that calls Run).
var ErrGoexit = errors.New("backi: runtime.Goexit called")

// call runs fn(ctx), turning a panic into a *PanicError.
func call(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return fn(ctx)
}

// callThen calls fn(ctx) as call does, and passes its result to then, even
// when fn calls runtime.Goexit: then gets ErrGoexit.
func callThen(ctx context.Context, fn func(context.Context) error, then func(error)) {
	err := ErrGoexit
	defer func() { then(err) }()
	err = call(ctx, fn)
}

// protect runs fn, turning a panic into a *PanicError.
func protect[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = newPanicError(p)
		}
	}()
	return fn()
}

// as finds the first error of type T in err's tree, as errors.As does for
// a pointer to T, but by type alone: it is for backi's own error types, which
// have no As method, and needs no reflection. An error whose Unwrap method
// panics matches nothing.
func as[T error](err error) (t T, ok bool) {
	defer func() {
		if recover() != nil {
			var zero T
			t, ok = zero, false
		}
	}()
	return find[T](err)
}

func find[T error](err error) (T, bool) {
	for err != nil {
		if t, ok := err.(T); ok {
			return t, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if t, ok := find[T](e); ok {
					return t, true
				}
			}
			var zero T
			return zero, false
		default:
			err = nil
		}
	}
	var zero T
	return zero, false
}

// contained returns a handler that passes records to h and contains its
// panics: a record whose handling panics is dropped, and the panic is written
// to standard error, since the log itself failed.
func contained(h slog.Handler) slog.Handler {
	if c, ok := h.(safeHandler); ok {
		return c
	}
	return safeHandler{h}
}

type safeHandler struct{ h slog.Handler }

func (s safeHandler) Enabled(ctx context.Context, level slog.Level) (ok bool) {
	defer s.contain("Enabled")
	return s.h.Enabled(ctx, level)
}

func (s safeHandler) Handle(ctx context.Context, r slog.Record) (err error) {
	defer s.contain("Handle")
	return s.h.Handle(ctx, r)
}

// WithAttrs and WithGroup keep s when h's panic or return nil.
func (s safeHandler) WithAttrs(attrs []slog.Attr) (h slog.Handler) {
	h = s
	defer s.contain("WithAttrs")
	if w := s.h.WithAttrs(attrs); w != nil {
		return safeHandler{w}
	}
	return s
}

func (s safeHandler) WithGroup(name string) (h slog.Handler) {
	h = s
	defer s.contain("WithGroup")
	if w := s.h.WithGroup(name); w != nil {
		return safeHandler{w}
	}
	return s
}

// contain, deferred, recovers a panic of the handler's method.
func (s safeHandler) contain(method string) {
	if v := recover(); v != nil {
		fmt.Fprintf(os.Stderr, "backi: log handler %T: %s panicked: %s\n", s.h, method, safe.Text(v))
	}
}

// safeObserver tells o, and logs and forgets o's panics.
type safeObserver struct {
	o   Observer
	log *slog.Logger
}

// IterationStart keeps ctx when o returns nil, or a context that can never
// end in place of one that can, which would keep the iteration from being
// cancelled.
func (s *safeObserver) IterationStart(ctx context.Context, e IterationEvent) (out context.Context) {
	out = ctx
	defer s.contain(ctx, "IterationStart")
	if c := s.o.IterationStart(ctx, e); c != nil && (c.Done() != nil || ctx.Done() == nil) {
		return c
	}
	return ctx
}

func (s *safeObserver) IterationEnd(ctx context.Context, e IterationEvent, r IterationResult) {
	defer s.contain(ctx, "IterationEnd")
	s.o.IterationEnd(ctx, e, r)
}

func (s *safeObserver) StateChange(worker string, loop int, from, to State) {
	defer s.contain(context.Background(), "StateChange")
	s.o.StateChange(worker, loop, from, to)
}

// contain, deferred, recovers a panic of the observer's method and logs it.
func (s *safeObserver) contain(ctx context.Context, method string) {
	if v := recover(); v != nil {
		pe := newPanicError(v)
		s.log.LogAttrs(ctx, slog.LevelError, "observer panicked", slog.String("method", method),
			slog.Any("err", pe), slog.String("stack", string(pe.Stack)))
	}
}

// abandonGrace is how long past its context's end a bounded callback may run
// before it is abandoned.
const abandonGrace = 100 * time.Millisecond

// bounded calls fn, what the message names, with a context that carries
// base's values and cancellation and expires after timeout, on a goroutine of
// its own. A callback still running abandonGrace after its context ended is
// abandoned: left to finish on its own, and reported as an *abandonedError.
func bounded(base context.Context, timeout time.Duration, what string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(base, min(timeout, maxWait))
	done := make(chan error, 1)
	go callThen(ctx, fn, func(err error) {
		cancel()
		done <- err
	})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	grace := time.NewTimer(abandonGrace)
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-grace.C:
		return &abandonedError{what: what, timeout: timeout, err: ctx.Err()}
	}
}

// abandonedError is the failure of a callback that outlived its context.
type abandonedError struct {
	what    string
	timeout time.Duration
	err     error // the context's
}

func (e *abandonedError) Error() string {
	if errors.Is(e.err, context.DeadlineExceeded) {
		return fmt.Sprintf("backi: %s still running %v after its %v timeout: abandoned", e.what, abandonGrace, e.timeout)
	}
	return fmt.Sprintf("backi: %s still running %v after its context was cancelled: abandoned", e.what, abandonGrace)
}

// Unwrap returns the context's error: context.DeadlineExceeded after a
// timeout.
func (e *abandonedError) Unwrap() error { return e.err }
