package backi_test

// The hostile tests that need names the rewritten core adds: ErrGoexit,
// StateCampaigning, Status.CampaignFailures and ErrHostStopping. Helpers are
// in hostile_test.go.

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// A7: runtime.Goexit in an iteration ends the turn, not the goroutine that
// called Run: the scope's cleanups run, the turn is a failure matching
// ErrGoexit, the worker goes on after its backoff wait, and Run returns when
// its context ends.
func TestHostileGoexitIsAFailure(t *testing.T) {
	for _, kind := range []string{"Loop", "Continuous"} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var starts timeLog
				var n, cleaned atomic.Int64
				iterate := func(ctx context.Context) error {
					starts.add()
					if n.Add(1) == 1 {
						runtime.Goexit()
					}
					return backi.ErrNoWork
				}
				opts := []backi.Option{backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(10 * time.Second)),
					backi.WithIdle(time.Minute, time.Minute)}
				w := backi.Loop("goexit", iterate, opts...)
				if kind == "Continuous" {
					w = backi.Continuous("goexit", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
						s.Defer(func(context.Context) error { cleaned.Add(1); return nil })
						return backi.IterationFunc(iterate), nil
					}, opts...)
				}
				r := runWorker(t, w)
				time.Sleep(30 * time.Second)
				st := w.Status()
				if st.Failures != 1 || !errors.Is(st.LastError, backi.ErrGoexit) {
					t.Errorf("Failures = %d, LastError = %v; want 1 failure matching ErrGoexit", st.Failures, st.LastError)
				}
				ts := starts.times()
				if len(ts) < 2 {
					t.Errorf("%d turns in 30s: the worker did not go on after the Goexit", len(ts))
				} else if d := ts[1].Sub(ts[0]); d < 10*time.Second {
					t.Errorf("the turn after the Goexit came %v after it, want the 10s backoff", d)
				}
				if kind == "Continuous" && cleaned.Load() < 1 {
					t.Errorf("the cleanup of the turn that called Goexit did not run")
				}
				if err := r.stop(); err != nil {
					t.Fatalf("Run = %v, want nil at the context's end", err)
				}
			})
		})
	}
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
