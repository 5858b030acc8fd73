package backitest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backitest"
)

// The recorder keeps what a worker that fails once, succeeds once and then
// stops itself told it, in order.
func TestRecorderKeepsWhatTheWorkerDid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := backitest.NewRecorder()
		errDown := errors.New("down")
		const backoff = 100 * time.Millisecond // short enough not to end on the process's tick
		calls := 0
		w := backi.Loop("outbox", func(ctx context.Context) error {
			time.Sleep(time.Second)
			switch calls++; calls {
			case 1:
				return errDown
			case 2:
				return nil
			}
			return backi.Stop(nil)
		}, backi.WithObserver(rec), backi.WithBackoff(backi.ConstantBackoff(backoff)), quiet)
		start := time.Now()
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}

		want := []backitest.StateChange{
			{Worker: "outbox", From: backi.StateNew, To: backi.StateRunning},
			{Worker: "outbox", From: backi.StateRunning, To: backi.StateBackingOff},
			{Worker: "outbox", From: backi.StateBackingOff, To: backi.StateRunning},
			{Worker: "outbox", From: backi.StateRunning, To: backi.StateStopped},
		}
		if got := rec.StateChanges(); !slices.Equal(got, want) {
			t.Errorf("state changes:\n%v\nwant\n%v", got, want)
		}
		s := time.Second
		wantEnds := []backitest.IterationEnd{
			{Worker: "outbox", Iteration: 1, Start: start, Result: backi.ResultFailure, Err: errDown, Duration: s},
			{Worker: "outbox", Iteration: 2, Start: start.Add(s + backoff), Result: backi.ResultSuccess, Duration: s},
			{Worker: "outbox", Iteration: 3, Start: start.Add(2*s + backoff), Result: backi.ResultStopped, Err: backi.Stop(nil), Duration: s}, // Stop's error, which is not comparable
		}
		got := rec.Iterations()
		if len(got) != len(wantEnds) {
			t.Fatalf("iteration ends:\n%v\nwant\n%v", got, wantEnds)
		}
		for i, e := range got {
			w := wantEnds[i]
			if e.Worker != w.Worker || e.Loop != w.Loop || e.Iteration != w.Iteration || !e.Start.Equal(w.Start) ||
				e.Result != w.Result || (e.Err == nil) != (w.Err == nil) || !errors.Is(e.Err, errDown) && w.Err == errDown || e.Duration != w.Duration {
				t.Errorf("iteration end %d: %+v; want %+v", i, e, w)
			}
		}
	})
}

func TestRecorderReturnsCopies(t *testing.T) {
	var rec backitest.Recorder // the zero Recorder is ready
	rec.StateChange("w", 0, backi.StateNew, backi.StateRunning)
	rec.IterationEnd(context.Background(), backi.IterationEvent{Worker: "w", Iteration: 1}, backi.IterationResult{})
	changes, ends := rec.StateChanges(), rec.Iterations()
	changes[0].To, ends[0].Iteration = backi.StateFailed, 9
	if rec.StateChanges()[0].To != backi.StateRunning || rec.Iterations()[0].Iteration != 1 {
		t.Error("changing what an accessor returned changed the recorder")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if rec.IterationStart(ctx, backi.IterationEvent{}) != ctx {
		t.Error("IterationStart did not return its context")
	}
}

// Many loops tell one recorder at once; each loop's changes come in order.
func TestRecorderWithConcurrency(t *testing.T) {
	rec := backitest.NewRecorder()
	w, _ := busy("parallel", backi.WithConcurrency(4), backi.WithObserver(rec))
	backitest.RunN(t, w, 200)
	if n := uint64(len(rec.Iterations())); n != w.Status().Iterations {
		t.Errorf("recorded %d iteration ends; Status counts %d", n, w.Status().Iterations)
	}
	last := map[int]backi.State{}
	for _, c := range rec.StateChanges() {
		if c.From != last[c.Loop] {
			t.Errorf("loop %d changed from %s; its last change was to %s", c.Loop, c.From, last[c.Loop])
		}
		last[c.Loop] = c.To
	}
	if len(last) != 4 {
		t.Errorf("changes of %d loops; want 4", len(last))
	}
}

func TestRecorderWait(t *testing.T) {
	ended := func(n int) func(*backitest.Recorder) bool {
		return func(r *backitest.Recorder) bool { return len(r.Iterations()) >= n }
	}
	t.Run("holds at once", func(t *testing.T) {
		rec := backitest.NewRecorder()
		if err := rec.Wait(t, func(*backitest.Recorder) bool { return true }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wakes on a record", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := backitest.NewRecorder()
			go func() {
				for i := range 3 {
					time.Sleep(time.Second)
					rec.IterationEnd(t.Context(), backi.IterationEvent{Iteration: uint64(i + 1)}, backi.IterationResult{})
				}
			}()
			start, checks := time.Now(), 0
			rec.Wait(t, func(r *backitest.Recorder) bool { checks++; return ended(3)(r) })
			if took := time.Since(start); took != 3*time.Second || checks != 4 {
				t.Errorf("Wait returned after %v and %d checks; want 3s and 4", took, checks)
			}
		})
	})
	t.Run("bound", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := backitest.NewRecorder()
			rec.StateChange("w", 0, backi.StateRunning, backi.StateBackingOff)
			rec.IterationEnd(t.Context(), backi.IterationEvent{Worker: "w", Iteration: 1}, backi.IterationResult{Result: backi.ResultFailure, Err: errors.New("down")})
			start := time.Now()
			msg := failure(t, func(ft backitest.TB) { rec.Wait(ft, ended(2), backitest.Within(time.Hour)) })
			wantIn(t, msg, "backitest: Recorder.Wait: waited 1h0m0s for the condition to hold",
				`recorded 1 iteration end and 1 change of state; the last end: worker "w" loop 0 iteration 1: failure (down); the last change: worker "w" loop 0 from running to backing off`)
			if took := time.Since(start); took != time.Hour {
				t.Errorf("failed after %v; want 1h", took)
			}
		})
	})
	t.Run("panic", func(t *testing.T) {
		rec := backitest.NewRecorder()
		msg := failure(t, func(ft backitest.TB) { rec.Wait(ft, func(*backitest.Recorder) bool { panic("no") }) })
		wantIn(t, msg, "backitest: Recorder.Wait: the condition panicked: no")
	})
	t.Run("bad input", func(t *testing.T) {
		rec := backitest.NewRecorder()
		wantIn(t, failure(t, func(ft backitest.TB) { rec.Wait(ft, nil) }), "backitest: Recorder.Wait: the condition is nil")
		wantIn(t, failure(t, func(ft backitest.TB) { (*backitest.Recorder)(nil).Wait(ft, ended(1)) }), "backitest: Recorder.Wait: the Recorder is nil")
		wantIn(t, failure(t, func(ft backitest.TB) { rec.Wait(ft, ended(1), backitest.Within(0)) }), "backitest: Recorder.Wait: Within(0s): need a positive duration")
	})
}
