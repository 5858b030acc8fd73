package backi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/backi-go/backi"
)

// plainLogger prints records without times, so that examples have stable output.
func plainLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "ran" || a.Key == "duration" || a.Key == "stack" {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func ExampleLoop() {
	pending := []string{"a", "b", "c"}
	w := backi.Loop("outbox", func(ctx context.Context) error {
		if len(pending) == 0 {
			return backi.Stop(nil) // a real worker would return backi.ErrNoWork
		}
		fmt.Println("sent", pending[0])
		pending = pending[1:]
		return nil
	}, backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println("successes:", w.Status().Successes)
	// Output:
	// sent a
	// sent b
	// sent c
	// successes: 3
}

// tx stands for a per-turn resource such as a database transaction.
type tx struct{ id int }

func (t *tx) Close(context.Context) error { fmt.Println("close tx", t.id); return nil }

func ExampleContinuous() {
	turn := 0
	w := backi.Continuous("reconciler", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
		turn++
		if turn > 2 {
			return nil, backi.Stop(nil)
		}
		t := &tx{id: turn}
		s.Defer(t.Close) // released after the turn, whatever happens
		return backi.IterationFunc(func(ctx context.Context) error {
			fmt.Println("reconcile in tx", t.id)
			return nil
		}), nil
	}, backi.WithLogger(slog.New(slog.DiscardHandler)))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// reconcile in tx 1
	// close tx 1
	// reconcile in tx 2
	// close tx 2
}

func ExampleScope_Defer() {
	w := backi.Continuous("scoped", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
		s.Defer(func(context.Context) error { fmt.Println("release connection"); return nil })
		s.Defer(func(context.Context) error { fmt.Println("remove temp file"); return nil })
		return backi.IterationFunc(func(ctx context.Context) error {
			panic("the iteration panics; the cleanups still run, last first")
		}), nil
	}, backi.WithLogger(slog.New(slog.DiscardHandler)),
		backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
			return 0, backi.Stop(nil)
		}))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// remove temp file
	// release connection
}

func ExampleErrNoWork() {
	queue := make(chan string, 10)
	w := backi.Loop("consumer", func(ctx context.Context) error {
		select {
		case job := <-queue:
			fmt.Println("handled", job)
			if job == "last" {
				return backi.Stop(nil)
			}
			return nil
		default:
			return backi.ErrNoWork // idle until the wait ends or Wake is called
		}
	}, backi.WithIdle(time.Hour, time.Hour), backi.WithLogger(slog.New(slog.DiscardHandler)))

	go func() {
		queue <- "first"
		queue <- "last"
		w.Wake() // ends the hour-long idle wait at once
	}()
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// handled first
	// handled last
}

func ExampleStop() {
	errQuota := errors.New("quota exhausted")
	w := backi.Loop("importer", func(ctx context.Context) error {
		return backi.Stop(errQuota) // end the worker on purpose
	}, backi.WithLogger(slog.New(slog.DiscardHandler)))

	err := w.Run(context.Background())
	fmt.Println(errors.Is(err, errQuota))
	// Output: true
}

func ExampleWithOnFailure() {
	attempts := 0
	w := backi.Loop("flaky", func(ctx context.Context) error {
		attempts++
		if attempts < 3 {
			return fmt.Errorf("attempt %d failed", attempts)
		}
		return backi.Stop(nil)
	}, backi.WithLogger(plainLogger()),
		backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
			// The counterpart of .NET's OnException: log, then choose the wait.
			f.Logger.Warn("retrying soon", "attempt", f.Attempt)
			return time.Millisecond, nil
		}))

	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// level=INFO msg="worker started" worker=flaky concurrency=1
	// level=WARN msg="retrying soon" worker=flaky attempt=1
	// level=ERROR msg="iteration failed" worker=flaky iteration=1 attempt=1 wait=1ms err="attempt 1 failed"
	// level=WARN msg="retrying soon" worker=flaky attempt=2
	// level=ERROR msg="iteration failed" worker=flaky iteration=2 attempt=2 wait=1ms err="attempt 2 failed"
	// level=INFO msg="worker stopped" worker=flaky
}

// pinger handles its own failures, as a .NET iteration does with a static
// OnException.
type pinger struct{ tries *int }

func (p pinger) Run(ctx context.Context) error {
	if *p.tries++; *p.tries < 3 {
		return errors.New("unreachable")
	}
	return backi.Stop(nil)
}

func (p pinger) OnFailure(ctx context.Context, f backi.Failure) (time.Duration, error) {
	fmt.Printf("ping failed (%v), attempt %d\n", f.Err, f.Attempt)
	return time.Millisecond, nil
}

func ExampleFailureHandler() {
	tries := 0
	w := backi.Continuous("pinger", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
		return pinger{&tries}, nil
	}, backi.WithLogger(slog.New(slog.DiscardHandler)))
	fmt.Println(w.Run(context.Background()))
	// Output:
	// ping failed (unreachable), attempt 1
	// ping failed (unreachable), attempt 2
	// <nil>
}

func ExampleWithEscalation() {
	w := backi.Loop("payments", func(ctx context.Context) error {
		return errors.New("gateway down")
	}, backi.WithLogger(slog.New(slog.DiscardHandler)),
		backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)),
		backi.WithEscalation(3, time.Minute, backi.StopWorker))

	err := w.Run(context.Background())
	var esc *backi.EscalationError
	fmt.Println(errors.As(err, &esc), esc.Failures)
	// Output: true 3
}

func ExampleHost() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	h := backi.NewHost(
		backi.WithShutdownTimeout(5*time.Second),
		backi.WithLogger(slog.New(slog.DiscardHandler)),
	)
	h.Add(
		backi.HTTPServer(&http.Server{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler()}),
		backi.Loop("refresh", func(ctx context.Context) error { return backi.ErrNoWork }),
	)
	// Run blocks until SIGINT, SIGTERM, ctx's end or a failed service, and
	// returns once everything has stopped.
	fmt.Println(h.Run(ctx))
	// Output: <nil>
}
