package backi_test

// The hostile tests that need names the rewritten core adds: ErrGoexit,
// StateCampaigning, Status.CampaignFailures and ErrHostStopping. Helpers are
// in hostile_test.go.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// A7: runtime.Goexit in an iteration ends the worker: the scope's cleanups
// run and the turn is a failure matching ErrGoexit. A lone loop runs on the
// goroutine that called Run, which Go then ends; the worker is left stopped
// (it can run again). With several loops, Run returns the error; in a Host,
// Host.Run does.
func TestHostileGoexitEndsTheWorker(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		loops int
	}{{"Loop", 1}, {"Continuous", 1}, {"Loop", 3}, {"Continuous", 3}} {
		t.Run(fmt.Sprintf("%s/loops=%d", tc.kind, tc.loops), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n, built, cleaned atomic.Int64
				iterate := func(ctx context.Context) error {
					if n.Add(1) == 1 {
						runtime.Goexit()
					}
					<-ctx.Done()
					return nil
				}
				log, rec := newRecorder()
				opts := []backi.Option{backi.WithLogger(log), backi.WithConcurrency(tc.loops)}
				w := backi.Loop("goexit", iterate, opts...)
				if tc.kind == "Continuous" {
					w = backi.Continuous("goexit", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
						built.Add(1)
						s.Defer(func(context.Context) error { cleaned.Add(1); return nil })
						return backi.IterationFunc(iterate), nil
					}, opts...)
				}
				var returned bool
				var err error
				exited := make(chan struct{})
				go func() {
					defer close(exited)
					err = w.Run(t.Context())
					returned = true
				}()
				<-exited
				if tc.loops == 1 && returned {
					t.Errorf("Run returned %v on the goroutine Goexit ends", err)
				}
				if tc.loops > 1 && (!returned || !errors.Is(err, backi.ErrGoexit)) {
					t.Errorf("Run returned %v (%v), want an error matching ErrGoexit", returned, err)
				}
				st := w.Status()
				if st.State != backi.StateFailed || st.Failures != 1 || !errors.Is(st.LastError, backi.ErrGoexit) {
					t.Errorf("status %+v; want failed, 1 failure matching ErrGoexit", st)
				}
				if tc.kind == "Continuous" && (cleaned.Load() != built.Load() || cleaned.Load() < 1) {
					t.Errorf("%d cleanups ran for %d turns, want one per turn, the Goexit's included", cleaned.Load(), built.Load())
				}
				if recs := rec.find("worker stopped"); len(recs) != 1 || !strings.Contains(recs[0].Attrs["err"].String(), "Goexit") {
					t.Errorf("stop records %+v, want one naming Goexit", recs)
				}
				// The worker can run again.
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				if err := w.Run(ctx); err != nil {
					t.Errorf("Run again = %v", err)
				}
			})
		})
	}
}

func TestHostileGoexitInAHostIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := backi.Loop("goexit", func(ctx context.Context) error { runtime.Goexit(); return nil }, backi.WithLogger(quiet))
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
		h.Add(w, blocking("other"))
		if err := h.Run(t.Context()); !errors.Is(err, backi.ErrGoexit) {
			t.Fatalf("Host.Run = %v, want an error matching ErrGoexit", err)
		}
	})
}

// E: a worker waiting in Campaign is campaigning, not running nor stuck,
// before it first leads and after it lost a term.
func TestHostileLeaderStateCampaigning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFakeElector()
		w := backi.Loop("singleton", func(ctx context.Context) error { <-ctx.Done(); return nil },
			backi.WithLeader(e), backi.WithLogger(quiet), backi.WithStuckAfter(time.Second),
			backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		r := runWorker(t, w)
		time.Sleep(10 * time.Second)
		if st := w.Status(); st.State != backi.StateCampaigning {
			t.Errorf("before leading: state %v, want campaigning", st.State)
		}
		t1 := e.grant(1)
		time.Sleep(5 * time.Second) // the iteration, which lasts the term, is stuck
		close(t1.done)
		time.Sleep(10 * time.Second)
		if st := w.Status(); st.State != backi.StateCampaigning || st.Leader {
			t.Errorf("after losing the term: state %v, leader %v; want campaigning", st.State, st.Leader)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v, want nil at the context's end", err)
		}
	})
}

// E: a failed campaign is logged as one, is counted apart from iterations,
// and does not count toward the escalation policy.
func TestHostileCampaignFailureIsNotAnIterationFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		e := newFakeElector()
		w := backi.Loop("singleton", func(ctx context.Context) error { <-ctx.Done(); return nil },
			backi.WithLeader(e), backi.WithLogger(log), backi.WithEscalation(1, time.Minute, backi.StopWorker),
			backi.WithBackoff(backi.ConstantBackoff(time.Minute)))
		r := runWorker(t, w)
		e.fail <- errHostile
		synctest.Wait()
		if st := w.Status(); st.CampaignFailures != 1 || st.Failures != 0 || st.Iterations != 0 {
			t.Errorf("after a failed campaign: CampaignFailures %d, Failures %d, Iterations %d; want 1, 0, 0",
				st.CampaignFailures, st.Failures, st.Iterations)
		}
		if got, bad := rec.find("campaign failed"), rec.find("iteration failed"); len(got) != 1 || len(bad) != 0 {
			t.Errorf("%d records \"campaign failed\" and %d \"iteration failed\", want 1 and 0", len(got), len(bad))
		}
		if err, ok := r.returned(); ok {
			t.Fatalf("a failed campaign ended the worker under WithEscalation(1, time.Minute, StopWorker): Run = %v", err)
		}
		start := time.Now()
		e.grant(2)
		if d := time.Since(start); d < 55*time.Second {
			t.Errorf("campaigned again %v after the failure, want the 1m backoff", d)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run = %v, want nil at the context's end", err)
		}
	})
}

// F: an iteration in a Host learns from its context's cause that the host is
// stopping.
func TestHostileHostStoppingCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		causes := make(chan error, 1)
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
		h.Add(backi.Loop("held", func(ctx context.Context) error {
			<-ctx.Done()
			select {
			case causes <- context.Cause(ctx):
			default:
			}
			return ctx.Err()
		}))
		time.AfterFunc(time.Minute, cancel)
		if err := h.Run(ctx); err != nil {
			t.Fatalf("Host.Run = %v, want nil after a requested stop", err)
		}
		if cause := <-causes; !errors.Is(cause, backi.ErrHostStopping) {
			t.Fatalf("the iteration's context ended with cause %v, want ErrHostStopping", cause)
		}
	})
}
