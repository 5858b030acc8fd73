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
	// DefaultConcurrency is the number of loops a worker runs (see WithConcurrency).
	DefaultConcurrency = 1
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
}

func defaultConfig() config {
	return config{
		backoff:        &exponentialBackoff{min: DefaultBackoffMin, max: DefaultBackoffMax},
		concurrency:    DefaultConcurrency,
		idleMin:        DefaultIdleMin,
		idleMax:        DefaultIdleMax,
		cleanupTimeout: DefaultCleanupTimeout,
	}
}

func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return c, errors.New("nil Option")
		}
		if err := o.applyWorker(&c); err != nil {
			return c, err
		}
	}
	return c, nil
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

// WithConcurrency runs n loops of the worker in parallel, each with its own
// scopes, backoff and idle wait; Status adds them up. n must be at least 1;
// the default is DefaultConcurrency.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithConcurrency(%d): need at least 1", n)
		}
		c.concurrency = n
		return nil
	})
}

// WithIdle bounds the wait after an iteration returned ErrNoWork: the first
// wait is min, each further one in a row doubles, up to max; an iteration that
// does work resets it. Requires 0 < min ≤ max; the defaults are DefaultIdleMin
// and DefaultIdleMax.
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

// WithCleanupTimeout bounds each scope cleanup registered with Scope.Defer.
// d must be positive; the default is DefaultCleanupTimeout.
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
func WithLogger(l *slog.Logger) SharedOption { return loggerOption{l} }

type loggerOption struct{ l *slog.Logger }

func (o loggerOption) check() error {
	if o.l == nil {
		return errors.New("WithLogger(nil): logger is nil")
	}
	return nil
}

func (o loggerOption) applyWorker(c *config) error {
	c.logger = o.l
	return o.check()
}

func (o loggerOption) applyHost(c *hostConfig) error {
	c.logger = o.l
	return o.check()
}

type loggerKey struct{}

// loggerFrom returns the logger a host placed in ctx, or slog.Default().
func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
