package backi_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/backi-go/backi"
)

// An operator pauses a worker while the system it feeds is down, and resumes
// it once the system is back; the worker starts paused here.
func ExampleWorker_Pause() {
	sent := make(chan int)
	n := 0
	w := backi.Loop("mailer", func(ctx context.Context) error {
		n++
		sent <- n
		return backi.ErrNoWork
	}, backi.WithPaused(), backi.WithLogger(slog.New(slog.DiscardHandler)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	for w.Status().State != backi.StatePaused {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("started", w.Status().State)

	w.Resume()
	fmt.Println("turn", <-sent)

	w.Pause()
	for w.Status().State != backi.StatePaused {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("now", w.Status().State)

	cancel() // a paused worker stops at once
	fmt.Println("Run returned", <-done)
	// Output:
	// started paused
	// turn 1
	// now paused
	// Run returned <nil>
}
