package backitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/safe"
)

// Recorder is a backi.Observer that keeps the end of every iteration and
// every change of state it is told of, for a test to read or wait for. Give
// it to a worker with backi.WithObserver, or to a Host for all its workers.
//
// The zero Recorder is ready to use. Its methods are safe for concurrent
// use, and wait only on channels, so that a Recorder works inside a
// testing/synctest bubble; make it inside the bubble that uses it.
type Recorder struct {
	mu      sync.Mutex
	ends    []IterationEnd
	changes []StateChange
	changed chan struct{} // closed, and dropped, on each record; made by Wait
}

// IterationEnd is how an iteration ended, as a Recorder keeps it.
type IterationEnd struct {
	Worker string
	// Loop is the index of the worker's loop, from 0 (see backi.WithConcurrency).
	Loop int
	// Iteration is the loop's iteration number, from 1.
	Iteration uint64
	// Start is when the iteration began, and Duration how long it ran.
	Start    time.Time
	Duration time.Duration
	Result   backi.Result
	// Err is what the iteration returned; nil for a success.
	Err error
}

// StateChange is a change of state of a worker's loop, as a Recorder keeps it.
type StateChange struct {
	Worker   string
	Loop     int
	From, To backi.State
}

// NewRecorder returns a Recorder that has recorded nothing.
func NewRecorder() *Recorder { return &Recorder{} }

// IterationStart returns ctx: a Recorder keeps only iterations' ends.
func (r *Recorder) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}

// IterationEnd records the end of the iteration e.
func (r *Recorder) IterationEnd(_ context.Context, e backi.IterationEvent, res backi.IterationResult) {
	r.record(func() {
		r.ends = append(r.ends, IterationEnd{Worker: e.Worker, Loop: e.Loop, Iteration: e.Iteration, Start: e.Start,
			Result: res.Result, Err: res.Err, Duration: res.Duration})
	})
}

// StateChange records a change of state of a worker's loop.
func (r *Recorder) StateChange(worker string, loop int, from, to backi.State) {
	r.record(func() {
		r.changes = append(r.changes, StateChange{Worker: worker, Loop: loop, From: from, To: to})
	})
}

// record runs add under the lock, and wakes Wait.
func (r *Recorder) record(add func()) {
	r.mu.Lock()
	add()
	changed := r.changed
	r.changed = nil
	r.mu.Unlock()
	if changed != nil {
		close(changed)
	}
}

// Iterations returns the iterations' ends recorded so far, in the order the
// Recorder was told of them. The slice is the caller's.
func (r *Recorder) Iterations() []IterationEnd {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ends)
}

// StateChanges returns the changes of state recorded so far, in the order
// the Recorder was told of them (for each loop, the order they happened in).
// The slice is the caller's.
func (r *Recorder) StateChanges() []StateChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

// Wait returns once cond holds. It calls cond on the goroutine that called
// Wait, so cond may call t.Fatal and the Recorder's methods: at once, then
// after each record, never more often. It returns nil once cond holds.
//
// Wait fails the test if cond does not hold within the bound (DefaultWithin,
// or Within), saying how many records it saw and the last of them, and if
// cond is nil or panics, or an option is invalid. Inside a testing/synctest
// bubble the bound passes on the bubble's clock.
func (r *Recorder) Wait(t TB, cond func(*Recorder) bool, opts ...Option) error {
	if t == nil {
		panic("backitest: Recorder.Wait: t is nil")
	}
	t.Helper()
	switch {
	case r == nil:
		return fail(t, errors.New("backitest: Recorder.Wait: the Recorder is nil"))
	case cond == nil:
		return fail(t, errors.New("backitest: Recorder.Wait: the condition is nil"))
	}
	s, err := settle(opts)
	if err != nil {
		return fail(t, fmt.Errorf("backitest: Recorder.Wait: %w", err))
	}
	bound := time.NewTimer(s.within)
	defer bound.Stop()
	for {
		changed := r.next() // before cond, so that a record made meanwhile is not missed
		ok, err := holds(cond, r)
		if err != nil {
			return fail(t, fmt.Errorf("backitest: Recorder.Wait: %w", err))
		}
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-bound.C:
			return fail(t, fmt.Errorf("backitest: Recorder.Wait: waited %v for the condition to hold (backitest.Within sets the bound); %s",
				s.within, r.summary()))
		}
	}
}

// next returns a channel closed by the next record.
func (r *Recorder) next() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// summary tells what the Recorder holds, for messages. It formats the
// errors of iterations, which may run any code, without the lock.
func (r *Recorder) summary() string {
	ends, changes := r.Iterations(), r.StateChanges()
	s := fmt.Sprintf("recorded %s and %s", plural(len(ends), "iteration end"), plural(len(changes), "change of state"))
	if n := len(ends); n > 0 {
		e := ends[n-1]
		s += fmt.Sprintf("; the last end: worker %q loop %d iteration %d: %s", e.Worker, e.Loop, e.Iteration, e.Result)
		if e.Err != nil {
			s += " (" + safe.Text(e.Err) + ")"
		}
	}
	if n := len(changes); n > 0 {
		c := changes[n-1]
		s += fmt.Sprintf("; the last change: worker %q loop %d from %s to %s", c.Worker, c.Loop, c.From, c.To)
	}
	return s
}
