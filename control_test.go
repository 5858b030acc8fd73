package backi_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// replicaOf returns a worker called name, as one replica runs it, that
// follows store and counts its turns.
func replicaOf(name string, store backi.ControlStore, opts ...backi.Option) (*backi.Worker, *int) {
	turns := new(int)
	w := backi.Loop(name, func(context.Context) error { *turns++; return backi.ErrNoWork },
		append([]backi.Option{backi.WithControlStore(store), backi.WithIdle(time.Hour, time.Hour), backi.WithLogger(quiet)}, opts...)...)
	return w, turns
}

// A pause on one replica pauses the others within a second, and a resume on
// another resumes them all.
func TestPauseHoldsAcrossReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &backi.MemoryStore{}
		a, aTurns := replicaOf("mailer", store)
		b, bTurns := replicaOf("mailer", store)
		stopA, stopB := runInBackground(t, a), runInBackground(t, b)
		synctest.Wait()
		a.Pause()
		wantState(t, a, backi.StatePaused)
		time.Sleep(time.Second)
		wantState(t, b, backi.StatePaused)
		if p, set, _ := store.Paused(t.Context(), "mailer"); !p || !set {
			t.Fatalf("the store has paused %v, set %v", p, set)
		}

		b.Resume()
		time.Sleep(time.Second)
		wantState(t, a, backi.StateIdle)
		if *aTurns != 2 || *bTurns != 2 {
			t.Fatalf("turns after resume: %d and %d, want 2 each", *aTurns, *bTurns)
		}
		if err := errors.Join(stopA(), stopB()); err != nil {
			t.Fatal(err)
		}
	})
}

// A worker that finds itself paused in the store starts no turn at all, and
// a pause outlives the process's worker.
func TestPauseInTheStoreHoldsFromTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &backi.MemoryStore{}
		first, _ := replicaOf("mailer", store)
		first.Pause() // before Run: written when it runs
		stop := runInBackground(t, first)
		wantState(t, first, backi.StatePaused)
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		next, turns := replicaOf("mailer", store)
		stop = runInBackground(t, next)
		wantState(t, next, backi.StatePaused)
		if *turns != 0 {
			t.Fatalf("a worker paused in the store ran %d turns", *turns)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		// Nothing recorded: WithPaused decides.
		fresh, turns := replicaOf("other", store, backi.WithPaused())
		stop = runInBackground(t, fresh)
		wantState(t, fresh, backi.StatePaused)
		if err := stop(); err != nil || *turns != 0 {
			t.Fatalf("WithPaused, nothing in the store: %d turns, %v", *turns, err)
		}
	})
}

// flakyStore fails, panics or blocks while told to.
type flakyStore struct {
	backi.MemoryStore
	mu    sync.Mutex
	fault string // "", "fail", "panic", "block"
	calls int
}

func (s *flakyStore) set(fault string) {
	s.mu.Lock()
	s.fault = fault
	s.mu.Unlock()
}

func (s *flakyStore) trouble(ctx context.Context) error {
	s.mu.Lock()
	fault := s.fault
	s.calls++
	s.mu.Unlock()
	switch fault {
	case "fail":
		return errors.New("database down")
	case "panic":
		panic("store bug")
	case "block":
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *flakyStore) Paused(ctx context.Context, name string) (bool, bool, error) {
	if err := s.trouble(ctx); err != nil {
		return false, false, err
	}
	return s.MemoryStore.Paused(ctx, name)
}

func (s *flakyStore) SetPaused(ctx context.Context, name string, p bool) error {
	if err := s.trouble(ctx); err != nil {
		return err
	}
	return s.MemoryStore.SetPaused(ctx, name, p)
}

// Until the store answers, the worker stays paused; a store that fails,
// panics or blocks is logged once, and followed again once it answers. A
// Resume made meanwhile takes effect here at once and reaches the store.
func TestAFailingControlStore(t *testing.T) {
	for _, fault := range []string{"fail", "panic", "block"} {
		t.Run(fault, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, rec := newRecorder()
				store := &flakyStore{fault: fault}
				w, turns := replicaOf("mailer", store, backi.WithLogger(log))
				stop := runInBackground(t, w)
				time.Sleep(20 * time.Second)
				wantState(t, w, backi.StatePaused)
				if *turns != 0 || !w.Status().Paused {
					t.Fatalf("ran %d turns with an unreadable store", *turns)
				}
				if errs := rec.atLeast(slog.LevelError); len(errs) != 1 || !strings.Contains(errs[0], "stays paused") {
					t.Fatalf("errors logged: %q, want one saying the worker stays paused", errs)
				}
				store.set("")
				time.Sleep(time.Second)
				wantState(t, w, backi.StateIdle)
				if len(rec.find("control store readable again")) != 1 {
					t.Fatal("the store's recovery was not logged")
				}

				store.set(fault)
				w.Pause() // takes effect here, not yet in the store
				wantState(t, w, backi.StatePaused)
				time.Sleep(10 * time.Second)
				store.set("")
				time.Sleep(time.Second)
				if p, _, _ := store.MemoryStore.Paused(t.Context(), "mailer"); !p {
					t.Fatal("the Pause made while the store failed never reached it")
				}
				if st := w.Status(); st.State != backi.StatePaused {
					t.Fatalf("state %v once the store took the Pause", st.State)
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// A paused singleton stays paused when leadership moves: the new leader
// reads the pause before it runs anything.
func TestANewLeaderOfAPausedSingletonRunsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &backi.MemoryStore{}
		e := newFakeElector()
		a, aTurns := replicaOf("report", store, backi.WithLeader(e))
		stopA := runInBackground(t, a)
		synctest.Wait()
		first := e.grant(1)
		wantState(t, a, backi.StateIdle)
		a.Pause()
		synctest.Wait()
		if err := stopA(); err != nil { // the leader's process ends
			t.Fatal(err)
		}
		close(first.done)

		b, bTurns := replicaOf("report", store, backi.WithLeader(e))
		stopB := runInBackground(t, b)
		synctest.Wait()
		e.grant(2)
		st := wantState(t, b, backi.StatePaused)
		if !st.Leader || *bTurns != 0 || *aTurns != 1 {
			t.Fatalf("new leader: %+v after %d turns (old leader %d)", st, *bTurns, *aTurns)
		}
		if err := stopB(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestWithControlStoreNil(t *testing.T) {
	err := backi.Loop("x", func(context.Context) error { return nil }, backi.WithControlStore(nil)).Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "WithControlStore(nil)") {
		t.Fatalf("Run = %v, want an error naming WithControlStore", err)
	}
}

// Pause and Resume are recorded in the store even when they change nothing
// on this replica: a Resume on a replica that has not yet seen a pause made
// elsewhere undoes that pause on every replica.
func TestResumeIsRecordedWhereItChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &backi.MemoryStore{}
		w, _ := replicaOf("mailer", store)
		stop := runInBackground(t, w)
		synctest.Wait()
		store.SetPaused(t.Context(), "mailer", true) // elsewhere, not read here yet
		w.Resume()
		synctest.Wait()
		if p, _, _ := store.Paused(t.Context(), "mailer"); p {
			t.Fatal("a Resume on a replica that was not paused was not recorded")
		}
		time.Sleep(time.Second)
		wantState(t, w, backi.StateIdle)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A worker that ends itself returns at once, even while its control store
// hangs: the store's call is cancelled rather than waited for.
func TestAWorkerThatStopsDoesNotWaitForItsControlStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakyStore{}
		release := make(chan struct{})
		w := backi.Loop("once", func(context.Context) error { <-release; return backi.Stop(nil) },
			backi.WithControlStore(store), backi.WithLogger(quiet))
		done := make(chan error, 1)
		go func() { done <- w.Run(t.Context()) }()
		synctest.Wait()
		store.set("block")
		time.Sleep(time.Second) // the store hangs in a poll meanwhile
		close(release)
		ended := time.Now()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(ended); d != 0 {
			t.Fatalf("Run returned %v after the worker stopped, waiting for the control store", d)
		}
	})
}

// unreadableStore takes writes but fails every read.
type unreadableStore struct{ backi.MemoryStore }

func (*unreadableStore) Paused(context.Context, string) (bool, bool, error) {
	return false, false, errors.New("replica lagging")
}

// A Resume made before Run, once written to the store, is what the store
// holds: the worker runs, even if it cannot read the store back.
func TestAResumeWrittenBeforeTheFirstReadHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &unreadableStore{}
		w, turns := replicaOf("mailer", store, backi.WithPaused())
		w.Resume()
		stop := runInBackground(t, w)
		wantState(t, w, backi.StateIdle)
		if *turns != 1 {
			t.Fatalf("%d turns after a Resume the store took, want 1", *turns)
		}
		if p, set, _ := store.MemoryStore.Paused(t.Context(), "mailer"); p || !set {
			t.Fatalf("the store holds paused %v, set %v", p, set)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// slowStore answers its first read at once, and then blocks each call until
// its context ends or release is closed; it counts the calls in flight, the
// most at once in most. ignore makes it ignore its context.
type slowStore struct {
	backi.MemoryStore
	ignore  bool
	release chan struct{}
	calls   atomic.Int32
	now     atomic.Int32
	most    atomic.Int32
}

func (s *slowStore) block(ctx context.Context) error {
	if s.calls.Add(1) == 1 {
		return nil
	}
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	if s.ignore {
		<-s.release
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.release:
		return nil
	}
}

func (s *slowStore) Paused(ctx context.Context, name string) (bool, bool, error) {
	if err := s.block(ctx); err != nil {
		return false, false, err
	}
	return s.MemoryStore.Paused(ctx, name)
}

func (s *slowStore) SetPaused(ctx context.Context, name string, p bool) error {
	if err := s.block(ctx); err != nil {
		return err
	}
	return s.MemoryStore.SetPaused(ctx, name, p)
}

// A worker that ends itself (Stop, or its escalation policy) returns from
// Run at once, without waiting for a slow read of its control store.
func TestRunReturnsAtOnceDespiteASlowControlStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{release: make(chan struct{})}
		defer close(store.release)
		var stopped time.Time
		w := backi.Loop("once", func(context.Context) error {
			time.Sleep(time.Second) // the follower is reading the store
			stopped = time.Now()
			return backi.Stop(nil)
		}, backi.WithControlStore(store), backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(stopped); d > 100*time.Millisecond {
			t.Fatalf("Run returned %v after the worker stopped, waiting for the control store", d)
		}
	})
}

// A store that never returns, whatever its context says, has one call in
// flight at a time: the worker does not call it again while a call it
// abandoned still runs, so that goroutines do not pile up.
func TestAHungControlStoreDoesNotPileUpCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		store := &slowStore{release: make(chan struct{}), ignore: true}
		w, _ := replicaOf("mailer", store, backi.WithLogger(log))
		stop := runInBackground(t, w)
		time.Sleep(time.Minute)
		most := store.most.Load()
		close(store.release)
		time.Sleep(time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if most > 1 {
			t.Fatalf("%d calls of the hung store in flight at once after a minute, want 1", most)
		}
		if errs := rec.atLeast(slog.LevelError); len(errs) != 1 {
			t.Fatalf("errors logged: %q, want one", errs)
		}
		if len(rec.find("control store readable again")) != 1 {
			t.Fatal("the store's recovery was not logged")
		}
	})
}
