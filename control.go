package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ControlStore keeps whether workers are paused where every replica of a
// service reads it, so that pausing a worker on one replica pauses it on all
// of them, and across restarts (see WithControlStore). MemoryStore keeps it
// in memory; package pgleader's Store in PostgreSQL. Implementations must be
// safe for concurrent use.
type ControlStore interface {
	// Paused returns whether the worker called name is paused, as the latest
	// SetPaused for name recorded it; set is false when none has.
	Paused(ctx context.Context, name string) (paused, set bool, err error)
	// SetPaused records whether the worker called name is paused.
	SetPaused(ctx context.Context, name string, paused bool) error
}

// controlPoll is how often a worker with a ControlStore reads it.
const controlPoll = 500 * time.Millisecond

// WithControlStore makes the worker follow the pause recorded in s for its
// name: it reads s when Run starts, before any turn, and then every half
// second, so that a Pause or Resume on any replica takes effect on every
// replica within a second (the iterations in flight then finish). Pause and
// Resume take effect here at once and are written to s by the running
// worker, retried until s takes them. Until the worker has read s once, or
// written there a Pause or Resume made before Run, it stays paused; with
// nothing recorded in s, it is paused only if made WithPaused. s must not be
// nil.
func WithControlStore(s ControlStore) Option {
	return optionFunc(func(c *config) error {
		if s == nil {
			return errors.New("WithControlStore(nil): store is nil")
		}
		c.control = s
		return nil
	})
}

// pauses is a worker's pause: what its loops obey, and, with a ControlStore,
// what Pause or Resume asked that is not yet in the store.
type pauses struct {
	mu      sync.Mutex
	pending *bool         // the latest Pause or Resume, until it is in the store
	wake    chan struct{} // tells the follower of a pending change
	busy    atomic.Bool   // a call of the store runs, perhaps abandoned (see call)
}

// ask records a Pause (p true) or a Resume, which takes effect at once.
func (w *Worker) ask(p bool) {
	ps := &w.pauses
	ps.mu.Lock()
	if w.cfg.control != nil {
		ps.pending = &p
	}
	w.setPaused(p)
	ps.mu.Unlock()
	select {
	case ps.wake <- struct{}{}:
	default:
	}
}

// follow keeps the worker's pause and its ControlStore in step while the Run
// lasts: it syncs them once, then starts a goroutine that syncs them every
// controlPoll and on each Pause or Resume. It returns the function that
// stops the goroutine, cancelling its call of the store, and waits for it.
func (r *run) follow() (stop func()) {
	w := r.w
	ctx, cancel := context.WithCancel(r.ctx)
	if !r.syncPause(ctx, true) {
		w.pauses.mu.Lock()
		if w.pauses.pending == nil {
			w.setPaused(true) // until the store says otherwise
		}
		w.pauses.mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(controlPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-w.pauses.wake:
			}
			if ctx.Err() != nil {
				return
			}
			r.syncPause(ctx, false)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// syncPause writes a pending Pause or Resume to the store, then reads the pause
// from it and obeys it, unless a Pause or Resume came meanwhile. It reports
// whether the worker's pause is known to match the store's: the read
// succeeded, or failed after the worker's own Pause or Resume was written.
// Failures are logged when they begin and when they end, unless ctx, which
// bounds the calls, has ended.
func (r *run) syncPause(ctx context.Context, first bool) bool {
	w := r.w
	store, ps := w.cfg.control, &w.pauses
	ps.mu.Lock()
	pending := ps.pending
	ps.mu.Unlock()
	if pending != nil {
		err := r.call(ctx, "ControlStore.SetPaused", func(ctx context.Context) error {
			return store.SetPaused(ctx, w.name, *pending)
		})
		if err != nil {
			r.controlTrouble(ctx, err, "could not record the pause or resume in the control store")
			return false
		}
		ps.mu.Lock()
		if ps.pending == pending {
			ps.pending = nil
		}
		ps.mu.Unlock()
	}
	var paused, set bool
	err := r.call(ctx, "ControlStore.Paused", func(ctx context.Context) (err error) {
		paused, set, err = store.Paused(ctx, w.name)
		return err
	})
	if err != nil {
		msg := "could not read the control store"
		if first && pending == nil {
			msg = "could not read the control store: the worker stays paused until it can"
		}
		r.controlTrouble(ctx, err, msg)
		return pending != nil // written: the store holds what the worker obeys
	}
	if r.controlFailing {
		r.controlFailing = false
		r.log.LogAttrs(r.ctx, slog.LevelInfo, "control store readable again")
	}
	ps.mu.Lock()
	if ps.pending == nil {
		if !set {
			paused = w.cfg.paused
		}
		w.setPaused(paused)
	}
	ps.mu.Unlock()
	return true
}

// call calls fn, which calls the store's method what, bounded by storeTimeout
// (see bounded), unless a call that bounded abandoned is still running: then
// it fails at once, so that a store that never returns ties up one goroutine,
// not one more every few seconds.
func (r *run) call(ctx context.Context, what string, fn func(context.Context) error) error {
	busy := &r.w.pauses.busy
	if !busy.CompareAndSwap(false, true) {
		return fmt.Errorf("backi: %s: an earlier call, abandoned, has not returned yet", what)
	}
	return bounded(ctx, storeTimeout, what, func(ctx context.Context) error {
		defer busy.Store(false)
		return fn(ctx)
	})
}

// controlTrouble logs a failure of the control store, once until it works
// again, unless ctx, the calls' context, has ended: the Run is ending.
func (r *run) controlTrouble(ctx context.Context, err error, msg string) {
	if r.controlFailing || ctx.Err() != nil {
		return
	}
	r.controlFailing = true
	r.log.LogAttrs(r.ctx, slog.LevelError, msg, slog.Any("err", err))
}
