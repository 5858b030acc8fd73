package backi_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// fakeElector grants leadership when the test says so.
type fakeElector struct {
	grants   chan *fakeTerm
	fail     chan error
	mu       sync.Mutex
	resigned []uint64
}

type fakeTerm struct {
	token uint64
	done  chan struct{}
	e     *fakeElector
}

func newFakeElector() *fakeElector {
	return &fakeElector{grants: make(chan *fakeTerm), fail: make(chan error)}
}

func (e *fakeElector) Campaign(ctx context.Context) (backi.Term, error) {
	select {
	case t := <-e.grants:
		return t, nil
	case err := <-e.fail:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *fakeElector) grant(token uint64) *fakeTerm {
	t := &fakeTerm{token: token, done: make(chan struct{}), e: e}
	e.grants <- t
	return t
}

func (t *fakeTerm) Done() <-chan struct{} { return t.done }
func (t *fakeTerm) Token() uint64         { return t.token }
func (t *fakeTerm) Resign(ctx context.Context) error {
	t.e.mu.Lock()
	t.e.resigned = append(t.e.resigned, t.token)
	t.e.mu.Unlock()
	return nil
}

func TestLeaderRunsOnlyWhileLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFakeElector()
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		type run struct {
			at     time.Duration
			token  uint64
			cause  error
			length time.Duration
		}
		var mu sync.Mutex
		var runs []run
		w := backi.Loop("singleton", func(ctx context.Context) error {
			term, _ := backi.TermFrom(ctx)
			began := time.Now()
			<-ctx.Done() // a long iteration, ended only by its context
			mu.Lock()
			runs = append(runs, run{began.Sub(start), term.Token(), context.Cause(ctx), time.Since(began)})
			mu.Unlock()
			return ctx.Err()
		}, backi.WithLeader(e), backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()

		time.Sleep(10 * time.Second)
		if st := w.Status(); st.Leader || st.Iterations != 0 {
			t.Fatalf("before leading: %+v", st)
		}
		t1 := e.grant(1)
		synctest.Wait()
		if st := w.Status(); !st.Leader || st.Term != 1 || !st.LeaderSince.Equal(start.Add(10*time.Second)) {
			t.Fatalf("leading: %+v", st)
		}
		time.Sleep(20 * time.Second)
		close(t1.done) // leadership lost at 30s
		synctest.Wait()
		if st := w.Status(); st.Leader || st.Failures != 0 {
			t.Fatalf("after the loss: %+v", st)
		}
		time.Sleep(10 * time.Second)
		e.grant(2) // leads again at 40s
		time.Sleep(5 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := []run{
			{10 * time.Second, 1, backi.ErrLeadershipLost, 20 * time.Second},
			{40 * time.Second, 2, context.Canceled, 5 * time.Second},
		}
		if len(runs) != 2 || runs[0] != want[0] || runs[1] != want[1] {
			t.Fatalf("runs %+v, want %+v", runs, want)
		}
		if len(e.resigned) != 1 || e.resigned[0] != 2 {
			t.Fatalf("resigned %v, want the second term on stop", e.resigned)
		}
		if st := w.Status(); st.Failures != 0 || st.Leader {
			t.Fatalf("final status %+v", st)
		}
	})
}

func TestCampaignFailureIsRetriedAfterBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFakeElector()
		log, rec := newRecorder()
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("singleton", func(ctx context.Context) error { <-ctx.Done(); return nil },
			backi.WithLeader(e), backi.WithLogger(log), backi.WithBackoff(backi.ConstantBackoff(time.Minute)),
			backi.WithEscalation(1, time.Hour, backi.StopWorker))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		errDB := errors.New("database unreachable")
		e.fail <- errDB
		synctest.Wait()
		// A failed campaign is not an iteration: it has its own counter, and
		// does not feed the escalation policy.
		if st := w.Status(); st.CampaignFailures != 1 || st.Failures != 0 || st.Iterations != 0 || st.LastError != nil || st.State != backi.StateCampaigning {
			t.Fatalf("after a failed campaign: %+v", st)
		}
		if recs := rec.find("campaign failed"); len(recs) != 1 || recs[0].Attrs["err"].String() != errDB.Error() || recs[0].Attrs["wait"].Duration() != time.Minute {
			t.Fatalf("campaign failure records %+v", recs)
		}
		if recs := rec.find("iteration failed"); len(recs) != 0 {
			t.Fatalf("a failed campaign was logged as an iteration: %+v", recs)
		}
		start := time.Now()
		e.grant(7)
		if d := time.Since(start); d != time.Minute {
			t.Fatalf("campaigned again after %v, want the 1m backoff", d)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestStopWhileLeadingResigns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newFakeElector()
		errDone := errors.New("done")
		w := backi.Loop("singleton", func(ctx context.Context) error { return backi.Stop(errDone) },
			backi.WithLeader(e), backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(t.Context()) }()
		e.grant(3)
		if err := <-done; err != errDone {
			t.Fatalf("Run = %v", err)
		}
		if len(e.resigned) != 1 || e.resigned[0] != 3 {
			t.Fatalf("resigned %v", e.resigned)
		}
	})
}

func TestWithLeaderNil(t *testing.T) {
	err := backi.Loop("w", func(context.Context) error { return nil }, backi.WithLeader(nil)).Run(context.Background())
	if err == nil || err.Error() != `backi: worker "w": WithLeader(nil): elector is nil` {
		t.Fatalf("Run = %v", err)
	}
}

// leasedTerm is a fakeTerm with a lease that ends at until, while its Done
// channel stays open, as after a pause of the process.
type leasedTerm struct {
	*fakeTerm
	until time.Time
}

func (t leasedTerm) Lease() time.Time { return t.until }

func TestNoTurnStartsPastTheTermsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var began []time.Duration
		campaigns := 0
		fe := &fakeElector{}
		e := electorFunc(func(ctx context.Context) (backi.Term, error) {
			mu.Lock()
			campaigns++
			n := campaigns
			mu.Unlock()
			if n > 1 {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			ft := &fakeTerm{token: 1, done: make(chan struct{}), e: fe}
			return leasedTerm{ft, start.Add(time.Second)}, nil
		})
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("leased", func(ctx context.Context) error {
			mu.Lock()
			began = append(began, time.Since(start))
			mu.Unlock()
			time.Sleep(300 * time.Millisecond)
			return nil
		}, backi.WithLeader(e), backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := w.Status(); st.State != backi.StateCampaigning || st.Leader {
			t.Errorf("after the lease: %s, leader %v; want campaigning", st.State, st.Leader)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, 300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond}
		if !slices.Equal(began, want) {
			t.Fatalf("iterations began at %v, want %v: none at or past the lease's end (1s)", began, want)
		}
		if campaigns != 2 {
			t.Fatalf("%d campaigns, want a second one once the lease ran out", campaigns)
		}
		if !slices.Equal(fe.resigned, []uint64{1}) {
			t.Fatalf("resigned %v, want the term past its lease, 1", fe.resigned)
		}
	})
}

type electorFunc func(ctx context.Context) (backi.Term, error)

func (f electorFunc) Campaign(ctx context.Context) (backi.Term, error) { return f(ctx) }

// leaseOnly is a term that relies on its lease alone: its Done channel is
// nil, and never closes. lease is its Lease method.
type leaseOnly struct {
	lease    func() time.Time
	mu       sync.Mutex
	resigned int
}

func (t *leaseOnly) Done() <-chan struct{} { return nil }
func (t *leaseOnly) Token() uint64         { return 1 }
func (t *leaseOnly) Lease() time.Time      { return t.lease() }
func (t *leaseOnly) Resign(context.Context) error {
	t.mu.Lock()
	t.resigned++
	t.mu.Unlock()
	return nil
}

func TestATermPastItsLeaseIsLostEvenWithoutDone(t *testing.T) {
	// A lease that runs out after a second, and one whose Lease method
	// does not answer until the test ends: either way the term is lost, not
	// the worker ended, and the worker resigns it and campaigns again.
	for name, lease := range map[string]func(start time.Time, end <-chan struct{}) func() time.Time{
		"runs out": func(start time.Time, _ <-chan struct{}) func() time.Time {
			return func() time.Time { return start.Add(time.Second) }
		},
		"blocks": func(start time.Time, end <-chan struct{}) func() time.Time {
			return func() time.Time { <-end; return start.Add(time.Hour) }
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				end := make(chan struct{})
				defer close(end)
				term := &leaseOnly{lease: lease(time.Now(), end)}
				campaigns := 0
				e := electorFunc(func(ctx context.Context) (backi.Term, error) {
					if campaigns++; campaigns > 1 {
						<-ctx.Done()
						return nil, ctx.Err()
					}
					return term, nil
				})
				w := backi.Loop("lease only", func(ctx context.Context) error {
					time.Sleep(300 * time.Millisecond)
					return nil
				}, backi.WithLeader(e), backi.WithLogger(quiet))
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx) }()
				time.Sleep(5 * time.Second)
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("Run returned %v once the lease ran out, its context live", err)
				default:
				}
				if campaigns != 2 || term.resigned != 1 {
					t.Errorf("%d campaigns and %d resignations, want a second campaign after resigning", campaigns, term.resigned)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
