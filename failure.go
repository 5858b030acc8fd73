package backi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Failure describes one failed iteration to a failure hook (see [WithOnFailure]
// and [FailureHandler]).
type Failure struct {
	// Worker is the worker's name.
	Worker string
	// Err is what went wrong: the iteration's error, a *PanicError, an error
	// matching context.DeadlineExceeded after WithTimeout, or cleanup errors
	// joined to the iteration's.
	Err error
	// Attempt counts the consecutive failures of this loop, this one included.
	Attempt int
	// Wait is what the worker's Backoff chose for this attempt.
	Wait time.Duration
	// Logger is the worker's logger, with the worker's name attached.
	Logger *slog.Logger
}

// FailureHandler is implemented by an Iteration that handles its own failures,
// as a .NET iteration does with its static OnException. When the Iteration
// built for a turn implements it, OnFailure is called instead of the worker's
// WithOnFailure hook, with the same contract.
type FailureHandler interface {
	OnFailure(ctx context.Context, f Failure) (time.Duration, error)
}

// Escalation is what a worker does once failures pile up (see [WithEscalation]).
type Escalation int

const (
	// KeepGoing keeps retrying with backoff, however many failures. The default.
	KeepGoing Escalation = iota
	// StopWorker ends the worker with an *EscalationError; its Host keeps running.
	StopWorker
	// StopHost ends the worker with an *EscalationError and stops its Host,
	// even a service marked Optional.
	StopHost
)

func (e Escalation) String() string {
	switch e {
	case KeepGoing:
		return "keep going"
	case StopWorker:
		return "stop worker"
	case StopHost:
		return "stop host"
	}
	return fmt.Sprintf("Escalation(%d)", int(e))
}

type escalationPolicy struct {
	failures int
	window   time.Duration
	action   Escalation
}

// escalation remembers the times of the latest failures of a worker, across
// its loops, to tell when policy.failures of them fall within policy.window.
type escalation struct {
	policy escalationPolicy
	mu     sync.Mutex
	times  []time.Time // ring of the latest policy.failures failure times
	next   int
}

// record notes a failure at now and reports whether the policy gives up.
func (e *escalation) record(now time.Time) bool {
	p := e.policy
	if p.action == KeepGoing {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.times) < p.failures {
		e.times = append(e.times, now)
		if len(e.times) < p.failures {
			return false
		}
		return now.Sub(e.times[0]) <= p.window
	}
	e.times[e.next] = now
	e.next = (e.next + 1) % p.failures
	oldest := e.times[e.next]
	return now.Sub(oldest) <= p.window
}

// fail records a failure of the lane at now, of a turn that took took, asks
// the failure hook (its own when the turn's Iteration is a FailureHandler)
// and the escalation policy what to do, and logs it. It returns the wait before the next turn, or stop
// and Run's result.
func (l *lane) fail(err error, it Iteration, took time.Duration, now time.Time) (time.Duration, bool, error) {
	w, sl, ctx, log := l.w, l.sl, l.ctx, l.r.log
	l.inTurn = false
	sl.failures.Add(1)
	sl.lastFailure.Store(now.UnixNano())
	w.stats.lastErr.Store(&errorBox{err})
	w.stats.consecutive.Add(1)

	wait := w.backoffWait(l.attempt, log)
	rec := failureRecord{err: err, iteration: sl.count(), duration: took, attempt: l.attempt}
	hook := w.cfg.onFailure
	if h, ok := it.(FailureHandler); ok {
		hook = h.OnFailure
	}
	if hook != nil {
		hwait, pe, herr := callHook(ctx, hook, Failure{Worker: w.name, Err: err, Attempt: l.attempt, Wait: wait, Logger: log})
		switch {
		case pe != nil:
			log.LogAttrs(ctx, slog.LevelError, "failure hook panicked", slog.Any("err", pe), slog.String("stack", string(pe.Stack)))
		case herr != nil:
			if res, serr := kind(herr); res == ResultStopped {
				herr = serr
			}
			w.failLog.write(ctx, log, rec, now)
			return 0, true, herr
		default:
			wait = clampWait(hwait)
		}
	}
	if w.esc.record(now) {
		p := w.esc.policy
		w.failLog.write(ctx, log, rec, now)
		return 0, true, &EscalationError{Worker: w.name, Failures: p.failures, Window: p.window, Action: p.action, Err: err}
	}
	rec.wait = wait
	w.failLog.write(ctx, log, rec, now)
	return wait, false, nil
}

// callHook calls a failure hook, and returns a panic of the hook apart from
// the error it returned.
func callHook(ctx context.Context, hook func(context.Context, Failure) (time.Duration, error), f Failure) (wait time.Duration, panicked *PanicError, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked = newPanicError(v)
		}
	}()
	wait, err = hook(ctx, f)
	return wait, nil, err
}

// backoffWait asks the worker's Backoff for the wait after attempt
// consecutive failures. A Backoff that panics is logged, and the default
// backoff's wait used instead.
func (w *Worker) backoffWait(attempt int, log *slog.Logger) time.Duration {
	b := w.cfg.backoff
	d, err := protect(func() (time.Duration, error) { return b.Wait(attempt), nil })
	if err != nil {
		log.LogAttrs(context.Background(), slog.LevelError, "backoff panicked", slog.Any("err", err), stackAttr(err))
		d = defaultBackoff.Wait(attempt)
	}
	return clampWait(d)
}

// clampWait keeps a wait chosen by user code within [minWait, maxWait], so
// that a failing loop never runs back to back and no time overflows.
func clampWait(d time.Duration) time.Duration {
	return min(max(d, minWait), maxWait)
}
