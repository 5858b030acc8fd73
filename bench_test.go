package backi_test

// Benchmarks of the worker's own cost, each beside a hand-written baseline in
// the same run. Reproduce with:
//
//	go test -run '^$' -bench . -count 6 . | tee new.txt && benchstat new.txt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
)

var (
	errBenchDone = errors.New("done")
	benchLog     = slog.New(slog.DiscardHandler)
)

// counted returns an empty iteration that ends its loop after n calls: every
// runner below runs the same function value, so only the loop around it differs.
func counted(n int) func(context.Context) error {
	i := 0
	return func(context.Context) error {
		if i++; i >= n {
			return errBenchDone
		}
		return nil
	}
}

func recovered(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return fn(ctx)
}

// BenchmarkEmptyIteration measures one iteration that does nothing.
func BenchmarkEmptyIteration(b *testing.B) {
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		fn, done := counted(b.N), ctx.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if fn(ctx) != nil {
				return
			}
		}
	})
	b.Run("bare+recover", func(b *testing.B) {
		b.ReportAllocs()
		fn, done := counted(b.N), ctx.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if recovered(ctx, fn) != nil {
				return
			}
		}
	})
	b.Run("bare+recover+clock+counters", func(b *testing.B) {
		b.ReportAllocs()
		fn, done := counted(b.N), ctx.Done()
		var started, last, successes atomic.Int64
		for {
			select {
			case <-done:
				return
			default:
			}
			started.Store(time.Now().UnixNano())
			err := recovered(ctx, fn)
			end := time.Now()
			if err != nil {
				return
			}
			successes.Add(1)
			last.Store(end.UnixNano())
		}
	})
	b.Run("backi.Loop", func(b *testing.B) {
		b.ReportAllocs()
		fn := counted(b.N)
		w := backi.Loop("bench", func(ctx context.Context) error {
			if fn(ctx) != nil {
				return backi.Stop(nil)
			}
			return nil
		}, backi.WithLogger(benchLog))
		b.ResetTimer()
		if err := w.Run(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("backi.Continuous+Defer", func(b *testing.B) {
		b.ReportAllocs()
		fn := counted(b.N)
		cleanup := func(context.Context) error { return nil }
		it := backi.IterationFunc(func(ctx context.Context) error {
			if fn(ctx) != nil {
				return backi.Stop(nil)
			}
			return nil
		})
		w := backi.Continuous("bench", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			s.Defer(cleanup)
			return it, nil
		}, backi.WithLogger(benchLog))
		b.ResetTimer()
		if err := w.Run(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

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
