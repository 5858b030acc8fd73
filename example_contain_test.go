package backi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/backi-go/backi"
)

// An iteration can tell a host's shutdown from other cancellations by the
// cause of its context.
func ExampleErrHostStopping() {
	ctx, cancel := context.WithCancel(context.Background())
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(slog.New(slog.DiscardHandler)))
	h.Add(backi.Loop("flusher", func(ctx context.Context) error {
		cancel() // stop the host, as SIGTERM would
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), backi.ErrHostStopping) {
			fmt.Println("the host is stopping: flush what is buffered")
		}
		return nil
	}))
	if err := h.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output: the host is stopping: flush what is buffered
}

// An iteration that calls runtime.Goexit (as t.FailNow does) ends the
// worker. With several loops, Run returns the error; a worker with one loop
// runs it on Run's goroutine, which Go ends.
func ExampleErrGoexit() {
	var turns atomic.Int64
	w := backi.Loop("exits", func(ctx context.Context) error {
		if turns.Add(1) == 1 {
			runtime.Goexit()
		}
		<-ctx.Done()
		return nil
	}, backi.WithConcurrency(2), backi.WithLogger(slog.New(slog.DiscardHandler)))
	err := w.Run(context.Background())
	fmt.Println(errors.Is(err, backi.ErrGoexit), w.Status().State)
	// Output: true failed
}

// blockedElector never grants leadership: another replica leads.
type blockedElector struct{}

func (blockedElector) Campaign(ctx context.Context) (backi.Term, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A worker that waits to lead is campaigning: no iteration runs, and it is
// neither running nor stuck.
func ExampleStateCampaigning() {
	ctx, cancel := context.WithCancel(context.Background())
	w := backi.Loop("singleton", func(ctx context.Context) error { return nil },
		backi.WithLeader(blockedElector{}), backi.WithStuckAfter(time.Millisecond),
		backi.WithLogger(slog.New(slog.DiscardHandler)))
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	for w.Status().State != backi.StateCampaigning {
		time.Sleep(time.Millisecond)
	}
	st := w.Status()
	fmt.Println(st.State, st.Iterations, st.CampaignFailures)
	cancel()
	fmt.Println(<-done)
	// Output:
	// campaigning 0 0
	// <nil>
}
