package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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

func (s safeHandler) WithAttrs(as []slog.Attr) (h slog.Handler) {
	h = s
	defer s.contain("WithAttrs")
	return safeHandler{s.h.WithAttrs(as)}
}

func (s safeHandler) WithGroup(name string) (h slog.Handler) {
	h = s
	defer s.contain("WithGroup")
	return safeHandler{s.h.WithGroup(name)}
}

// contain, deferred, recovers a panic of the handler's method.
func (s safeHandler) contain(method string) {
	if v := recover(); v != nil {
		fmt.Fprintf(os.Stderr, "backi: log handler %T: %s panicked: %v\n", s.h, method, printable(v))
	}
}

// printable returns v, or its text when formatting v would call its methods:
// fmt contains their panics.
func printable(v any) any {
	switch v.(type) {
	case error, fmt.Stringer:
		return fmt.Sprint(v)
	}
	return v
}

// safeObserver tells o, and logs and forgets o's panics.
type safeObserver struct {
	o   Observer
	log *slog.Logger
}

func (s *safeObserver) IterationStart(ctx context.Context, e IterationEvent) (out context.Context) {
	out = ctx
	defer s.contain(ctx, "IterationStart")
	if c := s.o.IterationStart(ctx, e); c != nil {
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
