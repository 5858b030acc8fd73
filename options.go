package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of a worker's options.
const (
	// DefaultIdleMin and DefaultIdleMax bound the wait after an iteration
	// returned ErrNoWork (see WithIdle).
	DefaultIdleMin = time.Second
	DefaultIdleMax = 30 * time.Second
)

// An Option configures a worker. Options are checked when [Worker.Run] starts;
// an invalid one makes Run return an error that names it before any iteration runs.
type Option interface {
	applyWorker(*config) error
}

// A HostOption configures a [Host]. Options are checked when [Host.Run] starts.
type HostOption interface {
	applyHost(*hostConfig) error
}

// A SharedOption configures a worker or a host.
type SharedOption interface {
	Option
	HostOption
}

type optionFunc func(*config) error

func (f optionFunc) applyWorker(c *config) error { return f(c) }

type config struct {
	backoff        Backoff
	onFailure      func(context.Context, Failure) (time.Duration, error)
	concurrency    int
	idleMin        time.Duration
	idleMax        time.Duration
	timeout        time.Duration
	cleanupTimeout time.Duration
	logger         *slog.Logger
	escalation     escalationPolicy

	stuckAfter time.Duration
	observer   Observer
	elector    Elector

	schedule   Schedule
	runAtStart bool
	jitter     time.Duration
	store      ScheduleStore
	skipMissed bool
	paused     bool
	control    ControlStore
}

// init sets c to the defaults with opts applied.
func (c *config) init(opts []Option) error {
	c.backoff = defaultBackoff
	c.concurrency = 1
	c.idleMin, c.idleMax = DefaultIdleMin, DefaultIdleMax
	c.cleanupTimeout = DefaultCleanupTimeout
	for _, o := range opts {
		if o == nil {
			return errors.New("nil Option")
		}
		if err := o.applyWorker(c); err != nil {
			return err
		}
	}
	return nil
}

// WithBackoff sets the wait after a failure. The default is
// ExponentialBackoff(DefaultBackoffMin, DefaultBackoffMax).
func WithBackoff(b Backoff) Option {
	return optionFunc(func(c *config) error {
		if b == nil {
			return errors.New("WithBackoff(nil): backoff is nil")
		}
		if v, ok := b.(interface{ validate() error }); ok {
			if err := v.validate(); err != nil {
				return fmt.Errorf("WithBackoff: %w", err)
			}
		}
		c.backoff = b
		return nil
	})
}

// maxConcurrency bounds WithConcurrency.
const maxConcurrency = 1 << 16

// WithConcurrency runs n loops of the worker in parallel, each with its own
// scopes, backoff and idle wait; Status adds them up. n must be from 1 to
// 65,536; the default is 1.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 || n > maxConcurrency {
			return fmt.Errorf("WithConcurrency(%d): need 1 to %d loops", n, maxConcurrency)
		}
		c.concurrency = n
		return nil
	})
}

// WithIdle bounds the wait after an iteration returned ErrNoWork: the first
// wait is min, each further one in a row doubles, up to max; an iteration that
// does work resets it. Requires 0 < min ≤ max; the defaults are DefaultIdleMin
// and DefaultIdleMax. A wait of 500 ms or more ends on the process's next
// tick, as a backoff's does (see [Backoff]).
func WithIdle(min, max time.Duration) Option {
	return optionFunc(func(c *config) error {
		if min <= 0 || max < min {
			return fmt.Errorf("WithIdle(%v, %v): need 0 < min <= max", min, max)
		}
		c.idleMin, c.idleMax = min, max
		return nil
	})
}

// WithTimeout gives each iteration (and a Continuous build) a deadline d after
// its start. An iteration still running at its deadline is a failure, whatever
// it returns, and its error matches context.DeadlineExceeded. d must be
// positive; by default iterations have no deadline.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout(%v): need a positive duration", d)
		}
		c.timeout = d
		return nil
	})
}

// WithCleanupTimeout bounds each scope cleanup registered with Scope.Defer:
// its context expires after d, and a cleanup still running 100 ms later is
// abandoned (see Scope.Defer). d must be positive; the default is
// DefaultCleanupTimeout.
func WithCleanupTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithCleanupTimeout(%v): need a positive duration", d)
		}
		c.cleanupTimeout = d
		return nil
	})
}

// WithOnFailure sets the failure hook, the counterpart of .NET's OnException.
// It is called after every failure (error, panic, timeout, failed cleanup;
// never for ErrNoWork or shutdown) with what happened. It returns the wait
// before the next iteration (f.Wait keeps the backoff's choice) and nil, or a
// non-nil error to end the worker: Run then returns that error, or nil when
// it is Stop(nil). A panic in the hook is logged and the backoff's wait used.
// An Iteration that implements FailureHandler handles its own failures instead.
func WithOnFailure(fn func(ctx context.Context, f Failure) (time.Duration, error)) Option {
	return optionFunc(func(c *config) error {
		if fn == nil {
			return errors.New("WithOnFailure(nil): hook is nil")
		}
		c.onFailure = fn
		return nil
	})
}

// WithEscalation sets what happens when failures pile up: once `failures`
// failures have happened within `window`, the worker keeps going (KeepGoing,
// the default), or ends with an *EscalationError (StopWorker), or ends with an
// *EscalationError that also stops its Host (StopHost). Requires failures ≥ 1
// and window > 0.
func WithEscalation(failures int, window time.Duration, action Escalation) Option {
	return optionFunc(func(c *config) error {
		if failures < 1 || window <= 0 {
			return fmt.Errorf("WithEscalation(%d, %v, %v): need failures >= 1 and window > 0", failures, window, action)
		}
		if action < KeepGoing || action > StopHost {
			return fmt.Errorf("WithEscalation(%d, %v, %v): unknown action", failures, window, action)
		}
		c.escalation = escalationPolicy{failures: failures, window: window, action: action}
		return nil
	})
}

// WithLogger sets the logger of a worker or a host. A worker without one uses
// its host's logger, and outside a host slog.Default(). l must not be nil.
func WithLogger(l *slog.Logger) SharedOption {
	var err error
	switch {
	case l == nil:
		err = errors.New("WithLogger(nil): logger is nil")
	case l.Handler() == nil:
		err = errors.New("WithLogger: the logger has no handler (use slog.New)")
	}
	return sharedOption{err, func(c *config) { c.logger = l }, func(c *hostConfig) { c.logger = l }}
}

// sharedOption sets one setting of a worker or of a host, or reports err.
type sharedOption struct {
	err    error
	worker func(*config)
	host   func(*hostConfig)
}

func (o sharedOption) applyWorker(c *config) error {
	if o.err == nil {
		o.worker(c)
	}
	return o.err
}

func (o sharedOption) applyHost(c *hostConfig) error {
	if o.err == nil {
		o.host(c)
	}
	return o.err
}

// WithStuckAfter reports an iteration still running after d as stuck: one
// Warn record ("iteration stuck", with how long it has run), StateStuck in
// Status until it returns. The check runs every d/10, so the report comes
// within a tenth of d. On a host it is the default of the workers that set
// none. d must be positive; by default nothing is reported stuck.
func WithStuckAfter(d time.Duration) SharedOption {
	var err error
	if d <= 0 {
		err = fmt.Errorf("WithStuckAfter(%v): need a positive duration", d)
	}
	return sharedOption{err, func(c *config) { c.stuckAfter = d }, func(c *hostConfig) { c.stuckAfter = d }}
}

type stuckKey struct{}

type loggerKey struct{}

// loggerFrom returns the logger a host placed in ctx, or slog.Default().
func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// WithSchedule makes the worker periodic: it runs one iteration at each time
// s gives, and waits in between. Iterations never overlap: when one overruns
// its period, the ticks it covered are skipped and the next run starts at
// once, for the latest of them. ErrNoWork counts as a completed run. A failed
// run is retried after the backoff wait, unless the next scheduled run comes
// first; that run then proceeds as usual. Wake runs an iteration at once
// without moving the schedule. A periodic worker runs one loop (concurrency 1).
func WithSchedule(s Schedule) Option {
	return optionFunc(func(c *config) error {
		if s == nil {
			return errors.New("WithSchedule(nil): schedule is nil")
		}
		if v, ok := s.(interface{ validate() error }); ok {
			if err := v.validate(); err != nil {
				return fmt.Errorf("WithSchedule: %w", err)
			}
		}
		c.schedule = s
		return nil
	})
}

// WithRunAtStart makes a periodic worker run once as soon as it starts, then
// on its schedule.
func WithRunAtStart() Option {
	return optionFunc(func(c *config) error {
		c.runAtStart = true
		return nil
	})
}

// WithJitter delays each scheduled run by a random duration in [0, max), so
// that replicas and workers on the same schedule do not all fire at once.
// max must be positive.
func WithJitter(max time.Duration) Option {
	return optionFunc(func(c *config) error {
		if max <= 0 {
			return fmt.Errorf("WithJitter(%v): need a positive duration", max)
		}
		c.jitter = max
		return nil
	})
}

// WithScheduleStore sets where a periodic worker records its completed runs,
// under the worker's name. On start the worker continues from the last one:
// if runs were missed while it was down, it runs once at once (never once per
// missed run), unless WithSkipMissed. The default is a MemoryStore of the
// worker's own.
func WithScheduleStore(st ScheduleStore) Option {
	return optionFunc(func(c *config) error {
		if st == nil {
			return errors.New("WithScheduleStore(nil): store is nil")
		}
		c.store = st
		return nil
	})
}

// WithSkipMissed makes a periodic worker that finds, on start, that runs were
// missed while it was down wait for the next scheduled run instead of running
// once at once.
func WithSkipMissed() Option {
	return optionFunc(func(c *config) error {
		c.skipMissed = true
		return nil
	})
}

// Invalid returns an option that makes the worker's configuration invalid
// with err: Run returns it, as it returns the errors of backi's own options,
// before anything runs. Packages that make workers with options of their
// own report their errors with it. A nil err is itself an error.
func Invalid(err error) Option {
	return optionFunc(func(*config) error {
		if err == nil {
			return errors.New("Invalid(nil): the error is nil")
		}
		return err
	})
}

// WithPaused makes the worker start paused: Run starts no iteration until
// Resume (see Worker.Pause). With WithControlStore, what the store records
// for the worker wins: WithPaused counts only while it records nothing.
func WithPaused() Option {
	return optionFunc(func(c *config) error {
		c.paused = true
		return nil
	})
}

// checkSchedule checks the options that only make sense together.
func (c *config) checkSchedule() error {
	if c.schedule == nil {
		for _, o := range []struct {
			set  bool
			name string
		}{{c.runAtStart, "WithRunAtStart"}, {c.jitter > 0, "WithJitter"}, {c.store != nil, "WithScheduleStore"}, {c.skipMissed, "WithSkipMissed"}} {
			if o.set {
				return fmt.Errorf("%s: needs WithSchedule", o.name)
			}
		}
		return nil
	}
	if c.concurrency != 1 {
		return fmt.Errorf("WithSchedule: a periodic worker runs one loop, not WithConcurrency(%d)", c.concurrency)
	}
	if c.store == nil {
		c.store = &MemoryStore{}
	}
	return nil
}
