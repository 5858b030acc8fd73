package backi_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// runInBackground runs w on a goroutine; cancel ends the Run and returns its
// result.
func runInBackground(t *testing.T, w *backi.Worker) (cancel func() error) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() error {
		stop()
		return <-done
	}
}

func wantState(t *testing.T, w *backi.Worker, want backi.State) backi.Status {
	t.Helper()
	synctest.Wait()
	st := w.Status()
	if st.State != want {
		t.Fatalf("state %v, want %v (status %+v)", st.State, want, st)
	}
	return st
}

// A pause during an iteration lets it finish, then starts nothing until
// Resume, which runs a turn at once.
func TestPauseDuringAnIterationLetsItFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var starts []time.Time
		w := backi.Loop("job", func(ctx context.Context) error {
			starts = append(starts, time.Now())
			if len(starts) == 1 {
				<-release
			}
			return backi.ErrNoWork
		}, backi.WithLogger(quiet), backi.WithIdle(time.Hour, time.Hour))
		stop := runInBackground(t, w)
		synctest.Wait()
		w.Pause()
		if st := wantState(t, w, backi.StateRunning); !st.Paused {
			t.Fatalf("Paused is false right after Pause: %+v", st)
		}
		close(release)
		st := wantState(t, w, backi.StatePaused)
		if st.NoWork != 1 || len(starts) != 1 {
			t.Fatalf("paused after %d iterations and %d starts, want 1 and 1", st.NoWork, len(starts))
		}
		time.Sleep(time.Hour)
		if len(starts) != 1 {
			t.Fatalf("a paused worker started %d turns", len(starts)-1)
		}
		w.Resume()
		synctest.Wait()
		if len(starts) < 2 || !starts[1].Equal(starts[0].Add(time.Hour)) {
			t.Fatalf("no turn at once on Resume: starts %v", starts)
		}
		if st := w.Status(); st.Paused || st.State == backi.StatePaused {
			t.Fatalf("still paused after Resume: %+v", st)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A pause ends a long idle wait, a backoff wait and a scheduled wait at once:
// the worker shows paused, and nothing runs until Resume.
func TestPauseEndsEveryWait(t *testing.T) {
	for _, c := range []struct {
		name  string
		fn    func(context.Context) error
		opts  []backi.Option
		state backi.State
	}{
		{"idle", func(context.Context) error { return backi.ErrNoWork }, []backi.Option{backi.WithIdle(time.Hour, time.Hour)}, backi.StateIdle},
		{"backoff", func(context.Context) error { return errors.New("down") }, []backi.Option{backi.WithBackoff(backi.ConstantBackoff(time.Hour))}, backi.StateBackingOff},
		{"scheduled", func(context.Context) error { return nil }, []backi.Option{backi.WithSchedule(backi.Every(time.Hour)), backi.WithRunAtStart()}, backi.StateIdle},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				turns := 0
				w := backi.Loop("job", func(ctx context.Context) error { turns++; return c.fn(ctx) }, append(c.opts, backi.WithLogger(quiet))...)
				stop := runInBackground(t, w)
				wantState(t, w, c.state)
				w.Pause()
				st := wantState(t, w, backi.StatePaused)
				if !st.NextRun.IsZero() {
					t.Errorf("a paused worker shows a next run at %v", st.NextRun)
				}
				time.Sleep(3 * time.Hour)
				if turns != 1 {
					t.Fatalf("%d turns while paused, want none after the first", turns-1)
				}
				w.Resume()
				synctest.Wait()
				if turns != 2 {
					t.Fatalf("%d turns after Resume, want 2 (one at once)", turns)
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// Scheduled runs missed while paused are not queued: Resume runs one
// catch-up run, or with WithSkipMissed none, and the schedule goes on.
func TestResumeCatchesUpOnceOnSchedule(t *testing.T) {
	for _, skip := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			var starts []time.Time
			opts := []backi.Option{backi.WithSchedule(backi.Every(time.Hour)), backi.WithLogger(quiet)}
			if skip {
				opts = append(opts, backi.WithSkipMissed())
			}
			w := backi.Loop("hourly", func(context.Context) error { starts = append(starts, time.Now()); return nil }, opts...)
			begin := time.Now()
			stop := runInBackground(t, w)
			time.Sleep(90 * time.Minute) // one run, at the first hour
			w.Pause()
			time.Sleep(5 * time.Hour) // four runs missed
			w.Resume()
			synctest.Wait()
			resumed := time.Now()
			time.Sleep(time.Hour)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			first := begin.Truncate(time.Hour).Add(time.Hour)
			want := []time.Time{first, resumed, first.Add(6 * time.Hour)}
			if skip {
				want = []time.Time{first, first.Add(6 * time.Hour)}
			}
			if !equalTimes(starts, want) {
				t.Fatalf("skip missed %v: runs at %v, want %v", skip, starts, want)
			}
		})
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// Wake on a paused worker runs nothing, is logged, and is forgotten by
// Resume.
func TestWakeWhilePausedDoesNothingAndSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		turns := 0
		w := backi.Loop("poller", func(context.Context) error { turns++; return backi.ErrNoWork },
			backi.WithIdle(time.Hour, time.Hour), backi.WithLogger(log))
		stop := runInBackground(t, w)
		synctest.Wait()
		w.Pause()
		wantState(t, w, backi.StatePaused)
		for range 3 {
			w.Wake()
			synctest.Wait()
		}
		if turns != 1 {
			t.Fatalf("Wake on a paused worker ran %d turns", turns-1)
		}
		if len(rec.find("Wake ignored: the worker is paused")) != 1 {
			t.Fatalf("three wakes while paused were not logged once: %v", rec.all())
		}
		w.Resume()
		synctest.Wait()
		time.Sleep(30 * time.Minute)
		if turns != 2 {
			t.Fatalf("%d turns half an hour after Resume, want 2: the ignored Wake must not skip the idle wait", turns)
		}
		if len(rec.find("worker paused")) != 1 || len(rec.find("worker resumed")) != 1 {
			t.Fatalf("pause and resume not logged once each: %v", rec.all())
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A paused worker stops at once when its context ends.
func TestPausedWorkerStopsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("job", func(context.Context) error { return backi.ErrNoWork }, backi.WithLogger(quiet), backi.WithConcurrency(3))
		stop := runInBackground(t, w)
		synctest.Wait()
		w.Pause()
		wantState(t, w, backi.StatePaused)
		before := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(before); d != 0 {
			t.Fatalf("a paused worker took %v to stop", d)
		}
		if st := w.Status(); st.State != backi.StateStopped || !st.Paused {
			t.Fatalf("status after stop %+v, want stopped and still paused", st)
		}
	})
}

// WithPaused starts the worker paused; Pause and Resume before Run count.
func TestWithPausedStartsPaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		turns := 0
		w := backi.Loop("job", func(context.Context) error { turns++; return backi.ErrNoWork }, backi.WithLogger(quiet), backi.WithPaused())
		if !w.Status().Paused {
			t.Fatal("a worker made WithPaused is not paused")
		}
		stop := runInBackground(t, w)
		wantState(t, w, backi.StatePaused)
		if turns != 0 {
			t.Fatalf("a worker started paused ran %d turns", turns)
		}
		w.Resume()
		wantState(t, w, backi.StateIdle)
		if turns != 1 {
			t.Fatalf("%d turns after Resume, want 1", turns)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// The observer sees each loop enter and leave the paused state, in order.
func TestPauseIsObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &stateLog{}
		w := backi.Loop("job", func(context.Context) error { return backi.ErrNoWork },
			backi.WithLogger(quiet), backi.WithIdle(time.Hour, time.Hour), backi.WithObserver(obs))
		stop := runInBackground(t, w)
		synctest.Wait()
		w.Pause()
		synctest.Wait()
		w.Resume()
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		s := backi.StateNew
		want := [][2]backi.State{}
		for _, to := range []backi.State{backi.StateRunning, backi.StateIdle, backi.StatePaused, backi.StateRunning, backi.StateIdle, backi.StateStopped} {
			want = append(want, [2]backi.State{s, to})
			s = to
		}
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if got := obs.loops[0]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("state changes %v, want %v", got, want)
		}
	})
}

// A paused worker still campaigns, and once it leads keeps its term without
// running anything, so that no other replica runs it meanwhile; Resume runs
// it under that term.
func TestPausedLeaderKeepsItsTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFakeElector()
		var tokens []uint64
		w := backi.Loop("singleton", func(ctx context.Context) error {
			term, _ := backi.TermFrom(ctx)
			tokens = append(tokens, term.Token())
			return backi.ErrNoWork
		}, backi.WithLogger(quiet), backi.WithLeader(e), backi.WithPaused(), backi.WithIdle(time.Hour, time.Hour))
		stop := runInBackground(t, w)
		wantState(t, w, backi.StateCampaigning)
		e.grant(7)
		st := wantState(t, w, backi.StatePaused)
		if !st.Leader || st.Term != 7 || len(tokens) != 0 {
			t.Fatalf("a paused leader: status %+v after %d turns, want leading term 7 and no turn", st, len(tokens))
		}
		time.Sleep(time.Hour)
		w.Resume()
		wantState(t, w, backi.StateIdle)
		if len(tokens) != 1 || tokens[0] != 7 {
			t.Fatalf("turns under tokens %v after Resume, want one under 7", tokens)
		}
		e.mu.Lock()
		resigned := len(e.resigned)
		e.mu.Unlock()
		if resigned != 0 {
			t.Fatal("the paused leader resigned")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A Wake made right after Resume counts: the worker is no longer paused, so
// a periodic worker runs at once rather than at its next scheduled run.
func TestWakeRightAfterResumeRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts []time.Time
		w := backi.Loop("hourly", func(context.Context) error { starts = append(starts, time.Now()); return nil },
			backi.WithSchedule(backi.Every(time.Hour)), backi.WithLogger(quiet))
		stop := runInBackground(t, w)
		time.Sleep(10 * time.Minute)
		w.Pause()
		wantState(t, w, backi.StatePaused)
		time.Sleep(time.Minute)
		w.Resume()
		w.Wake()
		synctest.Wait()
		if len(starts) != 1 {
			t.Fatalf("%d runs after Resume and Wake, want one at once: the Wake was lost", len(starts))
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// WithRunAtStart runs once when the worker starts, not on every Resume: a
// pause and resume with no scheduled run missed runs nothing until the next
// run, so that clicking Pause and Resume cannot run an hourly job at will.
// A worker started paused has not had its start run yet: Resume runs it.
func TestResumeDoesNotRepeatTheRunAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts []time.Time
		w := backi.Loop("hourly", func(context.Context) error { starts = append(starts, time.Now()); return nil },
			backi.WithSchedule(backi.Every(time.Hour)), backi.WithRunAtStart(), backi.WithLogger(quiet))
		begin := time.Now()
		stop := runInBackground(t, w)
		time.Sleep(10 * time.Minute)
		for range 3 {
			w.Pause()
			wantState(t, w, backi.StatePaused)
			time.Sleep(time.Minute)
			w.Resume()
			synctest.Wait()
		}
		time.Sleep(time.Hour - 13*time.Minute + time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if want := []time.Time{begin, begin.Add(time.Hour)}; !equalTimes(starts, want) {
			t.Fatalf("runs at %v, want %v: Resume repeated the run at start", starts, want)
		}

		starts = nil
		w = backi.Loop("hourly", func(context.Context) error { starts = append(starts, time.Now()); return nil },
			backi.WithSchedule(backi.Every(time.Hour)), backi.WithRunAtStart(), backi.WithPaused(), backi.WithLogger(quiet))
		stop = runInBackground(t, w)
		time.Sleep(10 * time.Minute)
		w.Resume()
		synctest.Wait()
		resumed := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if want := []time.Time{resumed}; !equalTimes(starts, want) {
			t.Fatalf("a worker started paused: runs at %v, want %v", starts, want)
		}
	})
}

// A Pause made while the loop asks the term for its lease, just before a
// turn, holds: no turn starts after Pause has returned.
func TestPauseWhileTheLeaseIsAskedStartsNoTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		term := &leaseOnly{lease: func() time.Time {
			time.Sleep(50 * time.Millisecond) // a round trip to the elector's database
			return time.Now().Add(time.Hour)
		}}
		e := electorFunc(func(ctx context.Context) (backi.Term, error) { return term, nil })
		var turns atomic.Int32
		w := backi.Loop("singleton", func(context.Context) error { turns.Add(1); return backi.ErrNoWork },
			backi.WithLeader(e), backi.WithPaused(), backi.WithIdle(time.Hour, time.Hour), backi.WithLogger(quiet))
		stop := runInBackground(t, w)
		wantState(t, w, backi.StatePaused)
		w.Resume()
		time.Sleep(10 * time.Millisecond) // the loop is asking for the lease
		w.Pause()
		time.Sleep(time.Second)
		if n := turns.Load(); n != 0 {
			t.Fatalf("%d turns started after Pause returned", n)
		}
		wantState(t, w, backi.StatePaused)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}
