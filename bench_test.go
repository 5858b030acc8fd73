package backi_test

// Benchmarks of stopping and of waiting workers, each beside bare goroutines.
// Run them with ./bench.sh. The cost of one iteration, beside the peers, is
// measured in the bench module (bench/w1_test.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
)

var (
	errBenchDone = errors.New("done")
	benchLog     = slog.New(slog.DiscardHandler)
)

// BenchmarkStop measures the time from cancel until n parked loops have all
// returned: bare goroutines waiting on the context, and idle workers.
func BenchmarkStop(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("bare/n=%d", n), func(b *testing.B) {
			benchStop(b, n, func(ctx context.Context, parked *sync.WaitGroup) {
				parked.Done()
				<-ctx.Done()
			})
		})
		b.Run(fmt.Sprintf("backi/n=%d", n), func(b *testing.B) {
			benchStop(b, n, func(ctx context.Context, parked *sync.WaitGroup) {
				var once sync.Once
				w := backi.Loop("idle", func(ctx context.Context) error {
					once.Do(parked.Done)
					return backi.ErrNoWork
				}, backi.WithLogger(benchLog))
				w.Run(ctx)
			})
		})
	}
}

func benchStop(b *testing.B, n int, park func(ctx context.Context, parked *sync.WaitGroup)) {
	var perLoop float64
	for range b.N {
		b.StopTimer()
		runtime.GC()
		before := memInUse()
		ctx, cancel := context.WithCancel(context.Background())
		var parked, ended sync.WaitGroup
		parked.Add(n)
		for range n {
			ended.Go(func() { park(ctx, &parked) })
		}
		parked.Wait()
		runtime.GC()
		perLoop = float64(memInUse()-before) / float64(n)
		b.StartTimer()
		cancel()
		ended.Wait()
	}
	b.ReportMetric(perLoop, "B/loop")
}

func memInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

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
