package backi

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/backi-go/backi/internal/safe"
)

// ErrNoWork is returned by an iteration that found nothing to do. It is not a
// failure: the worker idles with a wait that grows from the idle minimum to the
// idle maximum (see [WithIdle]) and resets as soon as an iteration does work.
// [Worker.Wake] ends the wait at once. Wrapped errors are recognised with
// [errors.Is].
var ErrNoWork = errors.New("backi: no work")

// Stop returns an error that, returned by an iteration (or by a failure hook),
// ends the worker on purpose: [Worker.Run] returns err, or nil when err is nil.
// The stop error may be wrapped; it is recognised with [errors.As].
func Stop(err error) error { return &stopError{err: err} }

type stopError struct{ err error }

func (e *stopError) Error() string {
	if e.err == nil {
		return "backi: stop"
	}
	return "backi: stop: " + e.err.Error()
}

func (e *stopError) Unwrap() error { return e.err }

// kind tells what an iteration's result err asks of the worker: nothing
// (ResultSuccess, for nil), to idle (ResultNoWork), to stop (ResultStopped,
// with Stop's error), or else handle a failure. A panic is a failure whatever
// its value wraps, and so is an error whose Unwrap, Is or As panics.
func kind(err error) (res Result, serr error) {
	if err == nil {
		return ResultSuccess, nil
	}
	defer func() {
		if recover() != nil {
			res, serr = ResultFailure, nil
		}
	}()
	if isPanic(err) {
		return ResultFailure, nil
	}
	if s, ok := as[*stopError](err); ok {
		return ResultStopped, s.err
	}
	if errors.Is(err, ErrNoWork) {
		return ResultNoWork, nil
	}
	return ResultFailure, nil
}

// isPanic reports whether err is or wraps a *PanicError.
func isPanic(err error) bool {
	_, ok := as[*PanicError](err)
	return ok
}

// PanicError is what a recovered panic becomes: in an iteration, in a Continuous
// build function, in a scope cleanup, in a failure hook or in a service run by a
// [Host]. The process survives; the panic is handled like any other failure.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic, as runtime/debug.Stack formats it.
	Stack []byte
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

func (e *PanicError) Error() string { return "backi: panic: " + safe.Text(e.Value) }

// Unwrap returns the panic value when it is an error, so that errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// EscalationError is returned by [Worker.Run] when the worker's escalation
// policy (see [WithEscalation]) gave up: Failures failures happened within
// Window. Its Action tells a [Host] whether to stop only this worker or the
// whole host.
type EscalationError struct {
	Worker   string
	Failures int
	Window   time.Duration
	Action   Escalation
	// Err is the last failure.
	Err error
}

func (e *EscalationError) Error() string {
	return fmt.Sprintf("backi: worker %q: %d failures within %v (%v): %v", e.Worker, e.Failures, e.Window, e.Action, e.Err)
}

func (e *EscalationError) Unwrap() error { return e.Err }

// timeoutError is the failure of an iteration that outlived WithTimeout.
type timeoutError struct {
	timeout time.Duration
	err     error // what the iteration returned, possibly nil
}

func (e *timeoutError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("backi: iteration exceeded its %v timeout", e.timeout)
	}
	return fmt.Sprintf("backi: iteration exceeded its %v timeout: %v", e.timeout, e.err)
}

// Unwrap makes errors.Is(err, context.DeadlineExceeded) true, and exposes what
// the iteration returned.
func (e *timeoutError) Unwrap() []error {
	if e.err == nil {
		return []error{context.DeadlineExceeded}
	}
	return []error{context.DeadlineExceeded, e.err}
}
