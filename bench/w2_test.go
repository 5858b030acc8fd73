package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/thejerf/suture/v4"
	"k8s.io/apimachinery/pkg/util/wait"
)

// BenchmarkW2 measures, for n parked loops under each runner, the time from
// cancel until all have returned, and the memory each parked loop holds.
// run.sh runs each runner in a process of its own: the runtime sizes new
// goroutines' stacks from those it has seen, which skews a runner measured
// after another in the same process.
func BenchmarkW2(b *testing.B) {
	type runner struct {
		name string
		// park starts n parked loops under ctx, calls parked once each is
		// waiting, and returns a function that waits until all have returned.
		park func(ctx context.Context, n int, parked *sync.WaitGroup) (wait func())
	}
	goroutines := func(loop func(ctx context.Context, parked *sync.WaitGroup)) func(context.Context, int, *sync.WaitGroup) func() {
		return func(ctx context.Context, n int, parked *sync.WaitGroup) func() {
			var ended sync.WaitGroup
			for range n {
				ended.Go(func() { loop(ctx, parked) })
			}
			return ended.Wait
		}
	}
	runners := []runner{
		{"bare", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			parked.Done()
			<-ctx.Done()
		})},
		{"backi", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			var once sync.Once
			backi.Loop("idle", func(context.Context) error {
				once.Do(parked.Done)
				return backi.ErrNoWork
			}, backi.WithLogger(quiet)).Run(ctx)
		})},
		{"wait.UntilWithContext", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			var once sync.Once
			wait.UntilWithContext(ctx, func(context.Context) { once.Do(parked.Done) }, time.Second)
		})},
		{"suture", func(ctx context.Context, n int, parked *sync.WaitGroup) func() {
			sup := suture.New("w2", suture.Spec{EventHook: func(suture.Event) {}})
			for range n {
				sup.Add(blocked{parked})
			}
			done := make(chan struct{})
			go func() { sup.Serve(ctx); close(done) }()
			return func() { <-done }
		}},
	}
	for _, r := range runners {
		for _, n := range []int{1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("runner=%s/n=%d", r.name, n), func(b *testing.B) {
				var perLoop float64
				for range b.N {
					b.StopTimer()
					runtime.GC()
					before := memInUse()
					ctx, cancel := context.WithCancel(context.Background())
					var parked sync.WaitGroup
					parked.Add(n)
					wait := r.park(ctx, n, &parked)
					parked.Wait()
					runtime.GC()
					perLoop = float64(memInUse()-before) / float64(n)
					b.StartTimer()
					cancel()
					wait()
				}
				b.ReportMetric(perLoop, "B/loop")
			})
		}
	}
}

// blocked is a suture service that waits for its context.
type blocked struct{ parked *sync.WaitGroup }

func (s blocked) Serve(ctx context.Context) error {
	s.parked.Done()
	<-ctx.Done()
	return ctx.Err()
}

func memInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
