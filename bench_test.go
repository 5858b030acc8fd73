package backi_test

// Benchmarks of waiting workers once their waits have grown. Run them with
// ./bench.sh. The cost of one iteration, of stopping parked loops, and of
// idle and failing loops in their first seconds, each beside the peers, are
// measured in the bench module (bench/RESULTS.md).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
)

var errBenchDone = errors.New("done")

// BenchmarkWaitingCPU measures the CPU share of a core that 1,000 workers use
// once their waits have grown: idle ones (ErrNoWork) and failing ones, with
// waits capped at one second so that the figure is reached in seconds. With
// the defaults (30 s caps) the share is about 30 times smaller.
func BenchmarkWaitingCPU(b *testing.B) {
	textLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		fn   func(context.Context) error
		opts []backi.Option
	}{
		{"idle", func(context.Context) error { return backi.ErrNoWork },
			[]backi.Option{backi.WithIdle(10*time.Millisecond, time.Second), backi.WithLogger(textLog)}},
		{"failing", func(context.Context) error { return errBenchDone },
			[]backi.Option{backi.WithBackoff(backi.ExponentialBackoff(10*time.Millisecond, time.Second)), backi.WithLogger(textLog)}},
	} {
		b.Run(tc.name+"/workers=1000", func(b *testing.B) {
			var share float64
			for range b.N {
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for i := range 1000 {
					w := backi.Loop(fmt.Sprint("w", i), tc.fn, tc.opts...)
					wg.Go(func() { w.Run(ctx) })
				}
				time.Sleep(4 * time.Second) // let the waits grow to their cap
				cpu0, wall0 := cpuTime(), time.Now()
				time.Sleep(5 * time.Second)
				share = float64(cpuTime()-cpu0) / float64(time.Since(wall0))
				cancel()
				wg.Wait()
			}
			b.ReportMetric(100*share, "%core")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
