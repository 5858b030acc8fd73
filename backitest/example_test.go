package backitest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backitest"
)

// exampleT stands, in these examples, for the *testing.T that a test passes
// to the helpers: it prints what would fail the test.
type exampleT struct{}

func (exampleT) Helper() {}

func (exampleT) Fatalf(format string, args ...any) {
	fmt.Println("the test fails:", fmt.Sprintf(format, args...))
}

// silent keeps the workers' logs out of the examples' output.
var silent = backi.WithLogger(slog.New(slog.DiscardHandler))

func ExampleRunN() {
	t := exampleT{} // in a test, its *testing.T
	pending := []string{"a", "b", "c", "d"}
	w := backi.Loop("outbox", func(ctx context.Context) error {
		fmt.Println("sent", pending[0])
		pending = pending[1:]
		return nil
	}, silent)

	backitest.RunN(t, w, 3) // stops the worker right after its third iteration
	s := w.Status()
	fmt.Println(s.Iterations, "iterations,", len(pending), "pending,", s.State)
	// Output:
	// sent a
	// sent b
	// sent c
	// 3 iterations, 1 pending, stopped
}

// Outside a synctest bubble the backoff waits take real time: this worker
// waits 1 ms after a failure. The package documentation shows the same test
// in a bubble, with the default backoff.
func ExampleRunN_retries() {
	t := exampleT{}
	sends := 0
	w := backi.Loop("outbox", func(ctx context.Context) error {
		if sends++; sends <= 2 {
			return errors.New("broker unavailable")
		}
		return nil
	}, backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)), silent)

	backitest.RunN(t, w, 3)
	s := w.Status()
	fmt.Println(s.Iterations, "iterations,", s.Failures, "failures")
	// Output: 3 iterations, 2 failures
}

// RunN returns what Run returned: here the error the worker ended with.
func ExampleRunN_stop() {
	t := exampleT{}
	errDrained := errors.New("outbox drained")
	sends := 0
	w := backi.Loop("outbox", func(ctx context.Context) error {
		if sends++; sends == 2 {
			return backi.Stop(errDrained)
		}
		return nil
	}, silent)

	err := backitest.RunN(t, w, 2)
	fmt.Println(errors.Is(err, errDrained))
	// Output: true
}

func ExampleRunUntil() {
	t := exampleT{}
	queue := []int{1, 2, 3}
	w := backi.Loop("consumer", func(ctx context.Context) error {
		if len(queue) == 0 {
			return backi.ErrNoWork
		}
		queue = queue[1:]
		return nil
	}, silent)

	// Until the queue is drained: stops before the idle wait.
	backitest.RunUntil(t, w, func(s backi.Status) bool { return s.NoWork > 0 })
	s := w.Status()
	fmt.Println(s.Successes, "consumed,", s.NoWork, "found nothing")
	// Output: 3 consumed, 1 found nothing
}

// A wait that outlasts its bound fails the test, saying what it awaited and
// how the worker stood.
func ExampleWithin() {
	t := exampleT{}
	w := backi.Loop("poller", func(ctx context.Context) error {
		return backi.ErrNoWork // then idle for an hour
	}, backi.WithIdle(time.Hour, time.Hour), silent)

	backitest.RunN(t, w, 2, backitest.Within(2*time.Second))
	// Output:
	// the test fails: backitest: RunN("poller", 2): waited 2s for 2 iterations to end (1 ended) (backitest.Within sets the bound); status: state idle, 1 iteration (0 successes, 0 failures, 1 no work)
}

func ExampleElector() {
	t := exampleT{}
	e := backitest.NewElector()
	w := backi.Loop("reconciler", func(ctx context.Context) error {
		term, _ := backi.TermFrom(ctx)
		fmt.Println("reconciling under term", term.Token())
		return nil
	}, backi.WithLeader(e), silent)

	e.Grant() // the worker's first campaign wins
	backitest.RunN(t, w, 1)
	fmt.Println("resigned when it stopped:", e.Terms()[0].Resigned())
	// Output:
	// reconciling under term 1
	// resigned when it stopped: true
}

// The leadership is lost while an iteration runs: its context is cancelled,
// with the cause backi.ErrLeadershipLost, and the worker campaigns again.
func ExampleElector_Revoke() {
	t := exampleT{}
	e := backitest.NewElector()
	turns := 0
	w := backi.Loop("reconciler", func(ctx context.Context) error {
		if turns++; turns == 2 {
			e.Revoke() // as if another replica took over now
			<-ctx.Done()
			fmt.Println("cancelled:", context.Cause(ctx))
			return ctx.Err()
		}
		return nil
	}, backi.WithLeader(e), silent)

	e.Grant()
	backitest.RunUntil(t, w, func(s backi.Status) bool {
		return s.Iterations == 2 && s.State == backi.StateCampaigning
	})
	fmt.Println("failures:", w.Status().Failures, "leading:", e.Leading())
	// Output:
	// cancelled: backi: leadership lost
	// failures: 0 leading: false
}

func ExampleRecorder() {
	rec := backitest.NewRecorder()
	sends := 0
	w := backi.Loop("outbox", func(ctx context.Context) error {
		if sends++; sends == 1 {
			return errors.New("broker unavailable")
		}
		return backi.Stop(nil)
	}, backi.WithObserver(rec), backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)), silent)

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	for _, c := range rec.StateChanges() {
		fmt.Println(c.From, "->", c.To)
	}
	for _, e := range rec.Iterations() {
		fmt.Println("iteration", e.Iteration, e.Result, e.Err)
	}
	// Output:
	// new -> running
	// running -> backing off
	// backing off -> running
	// running -> stopped
	// iteration 1 failure broker unavailable
	// iteration 2 stopped backi: stop
}

// A test that runs the worker itself can act between steps, waiting on a
// Recorder for each.
func ExampleRecorder_Wait() {
	t := exampleT{}
	e, rec := backitest.NewElector(), backitest.NewRecorder()
	w := backi.Loop("reconciler", func(ctx context.Context) error {
		return backi.ErrNoWork
	}, backi.WithLeader(e), backi.WithObserver(rec), silent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	iterated := func(r *backitest.Recorder) bool { return len(r.Iterations()) > 0 }
	rec.Wait(t, func(r *backitest.Recorder) bool { return len(r.StateChanges()) > 0 })
	fmt.Println("before the grant:", w.Status().State, "iterated:", iterated(rec))
	e.Grant()
	rec.Wait(t, iterated)
	fmt.Println("after the grant: leading under term", w.Status().Term)

	cancel()
	fmt.Println("Run returned", <-done)
	// Output:
	// before the grant: campaigning iterated: false
	// after the grant: leading under term 1
	// Run returned <nil>
}
