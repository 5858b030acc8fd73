// Package backi runs the background work of a Go service: loops that drain an
// outbox, poll a queue or refresh a cache, for the life of the process.
//
// A [Worker] runs one short iteration on repeat. [Loop] calls a function;
// [Continuous] builds a fresh [Iteration] for every turn in a [Scope] whose
// cleanups run after the turn, always, in reverse order. What an iteration
// returns steers the worker:
//
//	nil            run the next iteration at once
//	ErrNoWork      nothing to do: idle, with a wait growing from the idle minimum
//	               to the maximum (WithIdle); Wake ends it at once
//	Stop(err)      end the worker: Run returns err (nil for Stop(nil))
//	other error    a failure: logged at error level, counted, handed to the
//	               failure hook (WithOnFailure or the Iteration's OnFailure),
//	               then a backoff wait (WithBackoff; exponential with jitter by
//	               default, reset by the next success)
//
// A panic in an iteration, a build function, a cleanup or a hook becomes a
// [*PanicError] and is handled as a failure: the process survives. Every
// other callback (observers, schedules, backoffs, electors, stores, log
// handlers, an error's Error method) is contained too, and no value they
// return makes a loop run without a wait. An iteration that calls
// runtime.Goexit ends the worker with [ErrGoexit] after its cleanups. An
// iteration that ends because the worker is stopping is not a failure, and is
// never logged as one. [WithTimeout] bounds each iteration; [WithEscalation]
// ends the worker, or its host, once failures pile up.
//
// [WithSchedule] makes a worker periodic: [Every] runs on wall-clock
// boundaries, [EveryFrom] from an anchor, [Delay] a fixed time after each run,
// and the cron module parses cron expressions. A [ScheduleStore] keeps the
// last completed run so that restarts neither starve nor repeat runs.
//
// [WithLeader] runs a worker only while its replica leads, as an [Elector]
// decides, and cancels the iteration in flight when leadership is lost; while
// it waits to lead, its state is [StateCampaigning].
//
// The caller owns the goroutine: [Worker.Run] blocks until the worker ends and
// returns only when no iteration is in flight. [Worker.Status] reads counters
// kept in atomics, so it never waits for the loop.
//
// A [Host] runs workers and HTTP servers ([HTTPServer]) together. It stops on
// SIGINT or SIGTERM, when its context ends, or when a service fails; it drains
// HTTP servers first, then cancels the workers (with the cause
// [ErrHostStopping]) and lets their in-flight iterations finish, all within
// one shutdown timeout, and names whatever is still running when that timeout
// passes.
//
// Every record a worker logs carries the same attributes (worker, iteration,
// duration, attempt, wait, err); the same failure repeated within a second
// is summarised rather than logged one by one. [WithStuckAfter] reports
// iterations that run too long, and an [Observer] hears every iteration and
// state change, for metrics and tracing. Package backihttp serves health
// checks and statuses over HTTP.
//
// The package uses only the standard library.
package backi
