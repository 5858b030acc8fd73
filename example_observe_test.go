package backi_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/backi-go/backi"
)

// printer is an Observer that prints what it hears.
type printer struct{}

func (printer) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	fmt.Printf("%s: iteration %d starts\n", e.Worker, e.Iteration)
	return ctx
}

func (printer) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	fmt.Printf("%s: iteration %d: %v\n", e.Worker, e.Iteration, r.Result)
}

func (printer) StateChange(worker string, loop int, from, to backi.State) {
	fmt.Printf("%s: %v -> %v\n", worker, from, to)
}

func ExampleWithObserver() {
	n := 0
	w := backi.Loop("poller", func(ctx context.Context) error {
		if n++; n == 2 {
			return backi.Stop(nil)
		}
		return backi.ErrNoWork
	}, backi.WithObserver(printer{}), backi.WithIdle(time.Millisecond, time.Millisecond),
		backi.WithLogger(slog.New(slog.DiscardHandler)))
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// poller: new -> running
	// poller: iteration 1 starts
	// poller: iteration 1: no_work
	// poller: running -> idle
	// poller: idle -> running
	// poller: iteration 2 starts
	// poller: iteration 2: stopped
	// poller: running -> stopped
}

func ExampleWithStuckAfter() {
	release := make(chan struct{})
	w := backi.Loop("exporter", func(ctx context.Context) error {
		<-release // a call that hangs
		return backi.Stop(nil)
	}, backi.WithStuckAfter(10*time.Millisecond), backi.WithLogger(slog.New(slog.DiscardHandler)))

	done := make(chan error)
	go func() { done <- w.Run(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	fmt.Println(w.Status().State) // also one Warn record, and a failing liveness check
	close(release)
	fmt.Println(<-done)
	// Output:
	// stuck
	// <nil>
}
