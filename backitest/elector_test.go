package backitest_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backitest"
)

// campaign calls e.Campaign on a goroutine of its own, and returns where its
// term, or its error, arrives.
func campaign(ctx context.Context, e *backitest.Elector) <-chan backi.Term {
	won := make(chan backi.Term, 1)
	go func() {
		term, err := e.Campaign(ctx)
		if err != nil {
			term = nil
		}
		won <- term
	}()
	return won
}

func TestElectorCampaignWaitsForAGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := backitest.NewElector()
		won := campaign(t.Context(), e)
		synctest.Wait()
		if len(won) != 0 || e.Leading() {
			t.Fatal("a campaign won without a grant")
		}
		e.Grant()
		term := <-won
		if term == nil || term.Token() != 1 || !e.Leading() || isClosed(term.Done()) {
			t.Fatalf("won %v; want term 1 in force", term)
		}
		if terms := e.Terms(); len(terms) != 1 || terms[0] != term {
			t.Errorf("Terms() = %v; want the term won", terms)
		}
	})
}

func TestElectorGrantBeforeCampaign(t *testing.T) {
	var e backitest.Elector // the zero Elector is ready
	e.Grant()
	term, err := e.Campaign(context.Background())
	if err != nil || term.Token() != 1 {
		t.Fatalf("Campaign after Grant: %v, %v; want term 1", term, err)
	}
}

func TestElectorCampaignHonoursItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := backitest.NewElector()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		if _, err := e.Campaign(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Campaign returned %v after %v; want the deadline's error after 1s", err, time.Since(start))
		}
		ctx, cancel = context.WithCancel(t.Context())
		cancel()
		e.Grant()
		if _, err := e.Campaign(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Campaign returned %v; want context.Canceled", err)
		}
		//lint:ignore SA1012 a nil context is what is tested
		if _, err := e.Campaign(nil); err == nil || err.Error() != "backitest: Elector.Campaign(nil): the context is nil" {
			t.Errorf("Campaign(nil) returned %v", err)
		}
	})
}

// Grants wait for the term in force to end: two terms are never in force at
// once, however many campaigns wait.
func TestElectorOneTermAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := backitest.NewElector()
		a, b := campaign(t.Context(), e), campaign(t.Context(), e)
		e.Grant()
		e.Grant()
		synctest.Wait()
		if len(a)+len(b) != 1 {
			t.Fatalf("%d campaigns won; want 1", len(a)+len(b))
		}
		winner, rest := a, b
		if len(b) == 1 {
			winner, rest = b, a
		}
		first := <-winner
		if !e.Revoke() {
			t.Fatal("Revoke found no term in force")
		}
		second := <-rest
		if !isClosed(first.Done()) || second.Token() != 2 || isClosed(second.Done()) {
			t.Errorf("after Revoke: first term's Done closed %v, second term %d; want closed, then term 2", isClosed(first.Done()), second.Token())
		}
		terms := e.Terms()
		if len(terms) != 2 || !terms[0].Revoked() || terms[0].Resigned() || terms[1].Revoked() {
			t.Errorf("terms %v, first revoked %v resigned %v; want the first revoked, the second in force", terms, terms[0].Revoked(), terms[0].Resigned())
		}
	})
}

func TestElectorResign(t *testing.T) {
	e := backitest.NewElector()
	e.Grant()
	term, _ := e.Campaign(context.Background())
	if err := term.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	tt := term.(*backitest.Term)
	if !isClosed(term.Done()) || !tt.Resigned() || tt.Revoked() || e.Leading() {
		t.Errorf("after Resign: Done closed %v, resigned %v, revoked %v, leading %v", isClosed(term.Done()), tt.Resigned(), tt.Revoked(), e.Leading())
	}
	if err := term.Resign(context.Background()); err != nil || e.Revoke() {
		t.Errorf("a second Resign returned %v, or Revoke found a term in force", err)
	}
	if err := new(backitest.Term).Resign(context.Background()); err == nil {
		t.Error("a Term no Elector made resigned")
	}
}

// The worker leads once granted, reads the term's token, loses the
// leadership when the test revokes it (its iteration's context cancelled
// with ErrLeadershipLost, not a failure), and campaigns again.
func TestElectorRevokeMakesTheWorkerCampaignAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := backitest.NewElector()
		e.Grant()
		var token uint64
		var cause error
		calls := 0
		w := backi.Loop("singleton", func(ctx context.Context) error {
			calls++
			if term, ok := backi.TermFrom(ctx); ok {
				token = term.Token()
			}
			if calls == 2 {
				e.Revoke()
				<-ctx.Done()
				cause = context.Cause(ctx)
				return ctx.Err()
			}
			return nil
		}, backi.WithLeader(e), quiet)
		err := backitest.RunUntil(t, w, func(s backi.Status) bool {
			return s.State == backi.StateCampaigning && s.Iterations == 2
		})
		if err != nil {
			t.Fatal(err)
		}
		if token != 1 || !errors.Is(cause, backi.ErrLeadershipLost) {
			t.Errorf("token %d, cause %v; want 1 and ErrLeadershipLost", token, cause)
		}
		if s := w.Status(); s.Failures != 0 || s.Term != 1 || s.Leader {
			t.Errorf("status %+v; want no failure, term 1, not leading", s)
		}
		if terms := e.Terms(); len(terms) != 1 || !terms[0].Revoked() {
			t.Errorf("terms %v; want the one revoked", terms)
		}
	})
}

// A test can drive a worker it runs itself through several terms, waiting
// on a Recorder; the worker resigns the term it holds when it stops.
func TestElectorThroughSeveralTerms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, rec := backitest.NewElector(), backitest.NewRecorder()
		tokens := make(chan uint64, 10)
		w := backi.Loop("singleton", func(ctx context.Context) error {
			term, _ := backi.TermFrom(ctx)
			tokens <- term.Token()
			return backi.ErrNoWork
		}, backi.WithLeader(e), backi.WithObserver(rec), quiet)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()

		campaigning := func(n int) func(*backitest.Recorder) bool {
			return func(r *backitest.Recorder) bool {
				seen := 0
				for _, c := range r.StateChanges() {
					if c.To == backi.StateCampaigning {
						seen++
					}
				}
				return seen == n
			}
		}
		for term := uint64(1); term <= 3; term++ {
			e.Grant()
			if got := <-tokens; got != term {
				t.Fatalf("the iteration ran under term %d; want %d", got, term)
			}
			if term < 3 {
				e.Revoke()
				rec.Wait(t, campaigning(int(term)+1))
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		terms := e.Terms()
		if len(terms) != 3 || !terms[1].Revoked() || !terms[2].Resigned() || e.Leading() {
			t.Errorf("%d terms, the second revoked %v, the third resigned %v; want 3, revoked, resigned", len(terms), terms[1].Revoked(), terms[2].Resigned())
		}
	})
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
