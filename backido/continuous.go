package backido

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backi-go/backi"
	"github.com/samber/do/v2"
)

// Continuous returns a worker that runs a fresh T every turn, resolved from a
// scope of the turn's own, as [backi.Continuous] runs what its build function
// returns. Each turn it opens a child scope of root named after the worker
// and the turn ("name#1", "name#2", …), registers the turn's context in it as
// a context.Context, calls scoped to register the turn's services, and
// resolves T from it with do.Invoke[T] (so T is registered under its type's
// name, as do.Provide registers it). The services are built lazily, on that
// resolution, with the dependencies they invoke, from the turn's scope first
// and from root for the rest. After the turn, whatever its outcome (success,
// error, panic, cancellation), every service of the turn's scope is shut
// down, dependents before their dependencies, as one cleanup of the turn; then
// the scope is forgotten. The services are shut down in rounds, each of the
// services on which no remaining one depends, in parallel, and each round has
// the worker's [backi.WithCleanupTimeout], so that a Shutdown that takes all
// of it does not keep the services it uses from being shut down. backi
// abandons the cleanup past that timeout (the turn fails, and the worker goes
// on); the services left are shut down after, on the cleanup's goroutine.
//
// A turn fails, with an error that starts "backido: worker" and names the
// worker, when scoped panics, when T cannot be resolved (a service is
// missing, a provider returns an error, panics or returns a nil T; the error
// names T, and matches do.ErrServiceNotFound for a missing service), and
// when the shutdown of one of the turn's services returns an error, panics,
// calls runtime.Goexit or is still running at the cleanup timeout; a turn
// fails once, with all of these errors. The worker then waits as after any
// failure, so a missing service does not make it spin. do recovers a
// provider's panic itself and makes an error of it: the turn's error matches
// the panic's value when that is an error, but is no *backi.PanicError and
// carries no stack.
//
// Continuous returns an error, and no worker, when name is empty, root is
// nil or scoped is nil; use do.Package() for a turn with no services of its
// own. opts are the worker's options, checked by Run as for any worker.
//
// The worker keeps, as children of root, the scopes in which it opens the
// turns' scopes: as many as were ever in use at once, one per loop, and one
// more for each shutdown that backi abandoned and that still runs. They hold
// no service, and are forgotten with root's other children when root shuts
// down. Shut root down after the worker's Run has returned.
func Continuous[T backi.Iteration](name string, root do.Injector, scoped func(do.Injector), opts ...backi.Option) (*backi.Worker, error) {
	switch {
	case name == "":
		return nil, errors.New("backido: worker name is empty")
	case isNil(root):
		return nil, fmt.Errorf("backido: worker %q: the root injector is nil", name)
	case scoped == nil:
		return nil, fmt.Errorf("backido: worker %q: the scoped registration function is nil (use do.Package() for none)", name)
	}
	s := &scopes{worker: name, root: root, register: scoped}
	return backi.Continuous(name, func(ctx context.Context, bs *backi.Scope) (backi.Iteration, error) {
		turn, err := s.open(ctx, bs)
		if err != nil {
			return nil, err
		}
		return resolve[T](s.worker, turn)
	}, opts...), nil
}

// resolve returns the T of a turn's scope.
func resolve[T backi.Iteration](worker string, turn *do.Scope) (backi.Iteration, error) {
	it, err := protect(func() (T, error) { return do.Invoke[T](turn) })
	if err == nil && isNil(it) {
		err = errors.New("its provider returned nil")
	}
	if err != nil {
		return nil, &turnError{worker, fmt.Sprintf("resolving %s in scope %s", do.NameOf[T](), turn.Name()), err}
	}
	return it, nil
}

// turnError is the failure of one step of a turn. Its text is made when it
// is read, not when the failure happens: formatting an error whose Error
// method panics (fmt does not contain one that panics with itself) would
// otherwise panic in backido, and end the process on the goroutines that
// shut services down.
type turnError struct {
	worker string
	step   string // what failed: "resolving T in scope s"
	err    error
}

func (e *turnError) Error() string {
	return fmt.Sprintf("backido: worker %q: %s: %v", e.worker, e.step, e.err)
}

func (e *turnError) Unwrap() error { return e.err }

// scopes opens and closes the scopes of a worker's turns. Each turn's scope
// is a child of a holder: a child of root that serves one turn at a time,
// and whose shutdown, once the turn's services are shut down, makes do
// forget the turn's scope (do forgets a scope when its parent shuts down,
// not when it does). Holders are reused, so root keeps one per turn in
// flight, not one per turn.
type scopes struct {
	worker   string
	root     do.Injector
	register func(do.Injector)

	turns atomic.Uint64 // turns begun, to name their scopes

	mu   sync.Mutex
	free []*do.Scope // holders no turn uses
}

// holdersMade numbers the holders of every worker, so that two workers of
// one name do not name their holders alike in one root, where do refuses a
// second scope of a name.
var holdersMade atomic.Uint64

// open opens the scope of a new turn that runs with ctx, and defers its
// shutdown to the end of the turn with bs.
func (s *scopes) open(ctx context.Context, bs *backi.Scope) (*do.Scope, error) {
	h, err := s.holder()
	if err != nil {
		return nil, err
	}
	turn := h.Scope(fmt.Sprintf("%s#%d", s.worker, s.turns.Add(1)))
	bs.Defer(func(ctx context.Context) error { return s.close(ctx, h, turn) })
	_, err = protect(func() (struct{}, error) {
		do.ProvideValue(turn, ctx)
		s.register(turn)
		return struct{}{}, nil
	})
	if err != nil {
		return nil, &turnError{s.worker, "registering the services of scope " + turn.Name(), err}
	}
	return turn, nil
}

// holder returns a holder no turn uses, made if none is free.
func (s *scopes) holder() (*do.Scope, error) {
	s.mu.Lock()
	if n := len(s.free); n > 0 {
		h := s.free[n-1]
		s.free = s.free[:n-1]
		s.mu.Unlock()
		return h, nil
	}
	s.mu.Unlock()
	name := fmt.Sprintf("backido:%s:%d", s.worker, holdersMade.Add(1))
	h, err := protect(func() (*do.Scope, error) { return s.root.Scope(name), nil })
	if err != nil {
		return nil, &turnError{s.worker, fmt.Sprintf("opening scope %s in the root injector", name), err}
	}
	return h, nil
}

// close shuts down the services of a turn's scope, then makes do forget the
// scope by shutting its holder down, and frees the holder. A holder whose
// turn's scope still holds services is kept out of use, so that do never
// shuts them down itself (see shutdown).
func (s *scopes) close(ctx context.Context, h, turn *do.Scope) error {
	round := backi.DefaultCleanupTimeout // backi's cleanups have a deadline
	if dl, ok := ctx.Deadline(); ok {
		round = time.Until(dl)
	}
	err := s.shutdown(ctx, turn, round)
	if len(own(turn)) > 0 {
		return err
	}
	h.ShutdownWithContext(ctx) // shuts nothing down but empty scopes
	s.mu.Lock()
	s.free = append(s.free, h)
	s.mu.Unlock()
	return err
}

// protect calls fn, turning a panic into a *backi.PanicError.
func protect[V any](fn func() (V, error)) (v V, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &backi.PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// isNil tells whether v is nil or a nil pointer or function.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Func:
		return rv.IsNil()
	}
	return false
}
