// Package backido runs a backi worker whose every turn has a dependency
// injection scope of its own, with github.com/samber/do/v2: what .NET's
// Backi.Continuous does with a DI scope per iteration.
//
// [Continuous] takes a root injector and a registration function. Register
// where a service lives:
//
//   - In root, the services shared by every turn and the rest of the program:
//     a connection pool, a client, the configuration. They are built once,
//     when first invoked, and shut down when root shuts down.
//   - In the registration function, the iteration type T and the services
//     that live for one turn: a transaction, a unit of work, a per-turn
//     cache. The function runs at the start of every turn, in the turn's new
//     scope, so each turn builds its own, lazily, when T is resolved; a
//     service that implements one of do's Shutdowner interfaces is shut down
//     after the turn, whatever its outcome, dependents first (T before the
//     transaction it uses). The turn's context is registered in the turn's
//     scope too: a provider there gets it with do.Invoke[context.Context].
//     It is the context the iteration runs with: it ends when the worker
//     stops or the turn times out, not when the turn ends, so a service that
//     keeps it must not wait for it to end; a Shutdown method gets a context
//     of its own.
//
// A provider in root that invokes a service of the turn's scope does not
// find it: root's services resolve from root. Register T in root, and every
// turn runs the same T; in the registration function, and every turn builds
// a new one.
//
// The shutdown of a turn's services is one scope cleanup of the turn (see
// [backi.Scope.Defer]), and a failure of the turn when a Shutdown returns an
// error, panics, calls runtime.Goexit or outlives [backi.WithCleanupTimeout].
// Each round of it (the services that no remaining one depends on, in
// parallel) has that timeout: a slow Shutdown does not cost the services it
// uses theirs. A provider that blocks holds its turn, as a build
// function does: make it honour the turn's context, and
// [backi.WithStuckAfter] reports it. A transient service (do.Transient) is
// built at every invocation and never shut down by do. An alias (do.As)
// registered in the turn's scope counts as its target: the services that use
// either are shut down before the target. Its own shutdown, after the
// turn's other services, is its target's: it shuts down a target of root.
//
// The order of the shutdown comes from do's graph of what uses what, which
// do v2.0.0 reads by walking every path from a service: keep that graph free
// of cycles (a service that keeps its injector and later invokes a peer
// that does the same makes one, and the walk then never ends), and keep the
// services that a turn's services reach few, as the walk's cost grows with
// the number of paths.
package backido
