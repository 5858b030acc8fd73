package backido

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/backi-go/backi"
	"github.com/samber/do/v2"
)

// maxLate bounds the services that a scope's services register while it
// shuts down, so that a Shutdown that registers a service again ends.
const maxLate = 100

// shutdown shuts down the services of scope, and first those of the scopes
// under it: in rounds, each of the services on which no other one of the
// scope depends, in parallel, until none is left. It does what do's
// Scope.ShutdownWithContext does, but calls each Shutdown method on a
// goroutine that contains its panic or runtime.Goexit: do calls them on
// goroutines of its own, where a panic ends the process. Each round gets a
// context of its own, with ctx's values, that ends after timeout: do skips
// the Shutdown of a service whose context has ended, so that one context for
// all would leave a service unshut when the Shutdown of one that uses it
// takes the whole timeout. Each service is shut down once, even when its
// Shutdown fails; the errors are returned together.
func (s *scopes) shutdown(ctx context.Context, scope *do.Scope, timeout time.Duration) error {
	var errs []error
	for _, child := range scope.Children() {
		errs = append(errs, s.shutdown(ctx, child, timeout))
	}
	budget := -1 // rounds left, once the services are counted
	for {
		names := own(scope)
		if len(names) == 0 {
			break
		}
		if budget < 0 {
			budget = len(names) + maxLate
		}
		if budget == 0 {
			errs = append(errs, fmt.Errorf("backido: worker %q: scope %s: %d services registered while it shut down were left: %v", s.worker, scope.Name(), len(names), names))
			break
		}
		budget--
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		errs = append(errs, s.shutdownAll(rctx, scope, ready(scope, names)))
		cancel()
	}
	return errors.Join(errs...)
}

// shutdownAll shuts down the named services of scope, each on a goroutine of
// its own, and waits for them.
func (s *scopes) shutdownAll(ctx context.Context, scope *do.Scope, names []string) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			err := backi.ErrGoexit // unless the call returns or panics
			defer func() {
				if v := recover(); v != nil {
					err = &backi.PanicError{Value: v, Stack: debug.Stack()}
				}
				if err != nil {
					errs[i] = &turnError{s.worker, fmt.Sprintf("shutting down %s in scope %s", name, scope.Name()), err}
				}
			}()
			err = do.ShutdownNamedWithContext(ctx, scope, name)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// own returns the names of the services registered in scope itself.
func own(scope *do.Scope) []string {
	var names []string
	for _, d := range scope.ListProvidedServices() {
		if d.ScopeID == scope.ID() {
			names = append(names, d.Service)
		}
	}
	return names
}

// ready returns those of the named services of scope that no other one of
// them needs any more, or, when each is needed (a cycle), all of them, as do
// does. An alias (do.As) is needed by what depends on it, and its Shutdown
// is its target's: a service is needed by the dependents of its aliases too,
// and aliases come last, when no other service is left, so that each target
// is shut down in its own turn, and its aliases then find nothing to shut.
func ready(scope *do.Scope, names []string) []string {
	info := make(map[string]do.ExplainServiceOutput, len(names))
	for _, name := range names {
		if e, ok := do.ExplainNamedService(scope, name); ok {
			info[name] = e
		}
	}
	alias := func(name string) bool { return info[name].ServiceType == do.ServiceTypeAlias }
	// needed tells whether a service of names other than an alias depends on
	// name, directly or through aliases.
	var needed func(name string, seen map[string]bool) bool
	needed = func(name string, seen map[string]bool) bool {
		for _, d := range info[name].Dependents {
			if _, ok := info[d.Service]; d.ScopeID != scope.ID() || !ok || seen[d.Service] {
				continue
			}
			if !alias(d.Service) {
				return true
			}
			seen[d.Service] = true
			if needed(d.Service, seen) {
				return true
			}
		}
		return false
	}
	var out, others, aliases []string
	for _, name := range names {
		switch {
		case alias(name):
			aliases = append(aliases, name)
		case !needed(name, map[string]bool{}):
			out = append(out, name)
		default:
			others = append(others, name)
		}
	}
	switch {
	case len(out) > 0:
		return out
	case len(others) > 0:
		return others // a cycle
	}
	return aliases
}
