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
