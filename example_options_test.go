package backi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backi-go/backi"
)

func ExampleWithBackoff() {
	tries := 0
	w := backi.Loop("sync", func(ctx context.Context) error {
		if tries++; tries <= 2 {
			return errors.New("upstream busy")
		}
		return backi.Stop(nil)
	},
		// The .NET example's wait, shortened: the same wait after every failure.
		backi.WithBackoff(backi.ConstantBackoff(5*time.Millisecond)),
		backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
			fmt.Println("attempt", f.Attempt, "waits", f.Wait) // the backoff's choice
			return f.Wait, nil
		}), backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// attempt 1 waits 5ms
	// attempt 2 waits 5ms
}

func ExampleExponentialBackoff() {
	lo, hi := 100*time.Millisecond, 2*time.Second
	b := backi.ExponentialBackoff(lo, hi)
	for attempt := 1; attempt <= 6; attempt++ {
		// The wait doubles with each failure in a row, up to hi; it is drawn
		// from the upper half of that, so that loops failing together spread.
		d := min(lo<<(attempt-1), hi)
		from := max(lo, d/2)
		wait := b.Wait(attempt)
		fmt.Printf("attempt %d: %v to %v: %t\n", attempt, from, d, from <= wait && wait <= d)
	}
	// Output:
	// attempt 1: 100ms to 100ms: true
	// attempt 2: 100ms to 200ms: true
	// attempt 3: 200ms to 400ms: true
	// attempt 4: 400ms to 800ms: true
	// attempt 5: 800ms to 1.6s: true
	// attempt 6: 1s to 2s: true
}

func ExampleWithConcurrency() {
	jobs := make(chan int, 30)
	for i := range 30 {
		jobs <- i
	}
	close(jobs)
	var handled atomic.Int64
	w := backi.Loop("resize images", func(ctx context.Context) error {
		if _, ok := <-jobs; !ok {
			return backi.Stop(nil) // one loop's Stop ends them all
		}
		handled.Add(1)
		return nil
	}, backi.WithConcurrency(3), backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	s := w.Status()
	fmt.Println("loops:", s.Concurrency, "handled:", handled.Load(), "successes:", s.Successes)
	// Output: loops: 3 handled: 30 successes: 30
}

func ExampleWithTimeout() {
	w := backi.Loop("fetch", func(ctx context.Context) error {
		<-ctx.Done() // a call that hangs is cut off at the deadline
		return ctx.Err()
	}, backi.WithTimeout(10*time.Millisecond), backi.WithLogger(slog.New(slog.DiscardHandler)),
		backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
			fmt.Println(f.Err)
			fmt.Println(errors.Is(f.Err, context.DeadlineExceeded))
			return 0, backi.Stop(nil)
		}))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// backi: iteration exceeded its 10ms timeout: context deadline exceeded
	// true
}

func ExampleWithCleanupTimeout() {
	w := backi.Continuous("upload", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
		s.Defer(func(ctx context.Context) error {
			<-ctx.Done() // a cleanup that hangs gets a deadline of its own
			fmt.Println("cleanup:", ctx.Err())
			return nil
		})
		return backi.IterationFunc(func(ctx context.Context) error {
			return backi.Stop(nil)
		}), nil
	}, backi.WithCleanupTimeout(10*time.Millisecond), backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output: cleanup: context deadline exceeded
}

func ExamplePanicError() {
	line := "malformed"
	w := backi.Loop("parser", func(ctx context.Context) error {
		fields := strings.Fields(line)
		fmt.Println("id", fields[1]) // panics; the process survives
		return nil
	}, backi.WithLogger(slog.New(slog.DiscardHandler)), backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
		var pe *backi.PanicError
		if errors.As(f.Err, &pe) {
			fmt.Println("recovered:", pe.Value)
			fmt.Println("with its stack:", len(pe.Stack) > 0)
		}
		return 0, backi.Stop(nil)
	}))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// recovered: runtime error: index out of range [1] with length 1
	// with its stack: true
}

func ExampleWorker_Status() {
	turn := 0
	w := backi.Loop("mailer", func(ctx context.Context) error {
		switch turn++; turn {
		case 1:
			return errors.New("smtp: connection refused")
		case 2:
			return backi.ErrNoWork
		case 3:
			return nil
		}
		return backi.Stop(nil)
	}, backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)),
		backi.WithIdle(time.Millisecond, time.Millisecond), backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Status is safe to read at any time, from any goroutine.
	s := w.Status()
	fmt.Println(s.State, s.Iterations, "iterations:", s.Successes, "success,", s.Failures, "failure,", s.NoWork, "without work")
	fmt.Println("last error:", s.LastError)
	// Output:
	// stopped 4 iterations: 1 success, 1 failure, 1 without work
	// last error: smtp: connection refused
}

func ExampleOptional() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// A cache warmer that gives up does not take the service down with it.
	warmer := backi.Loop("warm cache", func(ctx context.Context) error {
		return backi.Stop(errors.New("cache unreachable"))
	})
	outbox := backi.Loop("outbox", func(ctx context.Context) error {
		if warmer.Status().State == backi.StateFailed {
			stop() // here, to end the example: the host ran on without the warmer
		}
		return backi.ErrNoWork
	}, backi.WithIdle(time.Millisecond, time.Millisecond))

	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(slog.New(slog.DiscardHandler)))
	h.Add(backi.Optional(warmer), outbox)
	fmt.Println(h.Run(ctx))
	for _, w := range h.Workers() {
		fmt.Println(w.Name()+":", w.Status().State)
	}
	// Output:
	// <nil>
	// warm cache: failed
	// outbox: stopped
}

func ExampleWithSignals() {
	// A host embedded in a program that handles signals itself installs no
	// handler: it stops when its context ends.
	ctx, stop := context.WithCancel(context.Background())
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(slog.New(slog.DiscardHandler)))
	h.Add(backi.Loop("sync", func(ctx context.Context) error {
		stop() // the program decides when to stop
		return nil
	}))
	fmt.Println(h.Run(ctx), h.State())
	// Output: <nil> stopped
}

func ExampleScheduledFor() {
	every := 10 * time.Millisecond
	w := backi.Loop("invoices", func(ctx context.Context) error {
		// Keyed by the run's due time, a run repeated after a crash between
		// its end and its record in the store has no effect twice.
		due, ok := backi.ScheduledFor(ctx)
		fmt.Println(ok, due.UnixNano()%int64(every) == 0)
		return backi.Stop(nil)
	}, backi.WithSchedule(backi.Every(every)), backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output: true true
}

func ExampleWithJitter() {
	// Every replica runs the sync within the minute after each hour, each at
	// a moment of its own.
	w := backi.Loop("hourly sync", func(ctx context.Context) error {
		return nil
	}, backi.WithSchedule(backi.Every(time.Hour)), backi.WithJitter(time.Minute))
	_ = w // run it with w.Run, or add it to a Host
}

func ExampleWithSkipMissed() {
	store := &backi.MemoryStore{}
	day := 24 * time.Hour
	_ = store.SaveRun(context.Background(), "weekly report", time.Now().Add(-8*day))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	w := backi.Loop("weekly report", func(ctx context.Context) error {
		fmt.Println("report sent")
		return nil
	},
		backi.WithSchedule(backi.Every(7*day)),
		backi.WithScheduleStore(store),
		backi.WithSkipMissed(), // the run missed while down is not made up
		backi.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err := w.Run(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("runs:", w.Status().Iterations)
	// Output: runs: 0
}

// tally is an Observer that counts iterations.
type tally struct{ n *int }

func (t tally) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	return ctx
}

func (t tally) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	*t.n++
}

func (t tally) StateChange(worker string, loop int, from, to backi.State) {}

func ExampleObservers() {
	n := 0
	w := backi.Loop("poller", func(ctx context.Context) error {
		return backi.Stop(nil)
	}, backi.WithObserver(backi.Observers(printer{}, tally{&n})), backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println("tallied:", n)
	// Output:
	// poller: new -> running
	// poller: iteration 1 starts
	// poller: iteration 1: stopped
	// poller: running -> stopped
	// tallied: 1
}

func ExampleInvalid() {
	// A package that makes workers reports its own option's error through Run.
	batch := 0
	var opts []backi.Option
	if batch < 1 {
		opts = append(opts, backi.Invalid(fmt.Errorf("Batch(%d): need at least 1", batch)))
	}
	w := backi.Loop("consumer", func(ctx context.Context) error { return nil }, opts...)
	fmt.Println(w.Run(context.Background()))
	// Output:
	// backi: worker "consumer": Batch(0): need at least 1
}
