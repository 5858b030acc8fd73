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
//
// A running loop is parked in one of two places, and each is measured:
// parked=in-work, inside its unit of work, which waits on the context (the
// bare goroutine runs that unit of work and nothing else); and parked=between, between two units,
// waiting on its context and a timer (backi idle after ErrNoWork,
// wait.UntilWithContext waiting out its period, and the bare baseline a
// select on the context and a timer, as a hand-written polling loop waits).
// suture has no wait between units of a healthy service.
//
// run.sh runs each case in a process of its own: the runtime sizes new
// goroutines' stacks from those it has seen, which skews a case measured
// after another in the same process.
func BenchmarkW2(b *testing.B) {
	// Each case starts n parked loops under ctx, calls parked once each is
	// waiting, and returns a function that waits until all have returned.
	type park func(ctx context.Context, n int, parked *sync.WaitGroup) (wait func())
	goroutines := func(loop func(ctx context.Context, parked *sync.WaitGroup)) park {
		return func(ctx context.Context, n int, parked *sync.WaitGroup) func() {
			var ended sync.WaitGroup
			for range n {
				ended.Go(func() { loop(ctx, parked) })
			}
			return ended.Wait
		}
	}
	// inWork is the unit of work of parked=in-work, the same for every
	// runner: it waits for its context and returns its error, as work cut
	// short by a shutdown does.
	inWork := func(parked *sync.WaitGroup) func(context.Context) error {
		return func(ctx context.Context) error {
			parked.Done()
			<-ctx.Done()
			return ctx.Err()
		}
	}
	cases := []struct {
		runner, parked string
		park           park
	}{
		{"bare", "in-work", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			inWork(parked)(ctx)
		})},
		{"bare", "between", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			parked.Done()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		})},
		{"backi", "in-work", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			backi.Loop("w2", inWork(parked), backi.WithLogger(quiet)).Run(ctx)
		})},
		{"backi", "between", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			var once sync.Once
			backi.Loop("w2", func(context.Context) error {
				once.Do(parked.Done)
				return backi.ErrNoWork
			}, backi.WithLogger(quiet)).Run(ctx)
		})},
		{"wait.UntilWithContext", "in-work", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			fn := inWork(parked)
			wait.UntilWithContext(ctx, func(ctx context.Context) { fn(ctx) }, time.Second)
		})},
		{"wait.UntilWithContext", "between", goroutines(func(ctx context.Context, parked *sync.WaitGroup) {
			var once sync.Once
			wait.UntilWithContext(ctx, func(context.Context) { once.Do(parked.Done) }, time.Second)
		})},
		{"suture", "in-work", func(ctx context.Context, n int, parked *sync.WaitGroup) func() {
			sup := suture.New("w2", suture.Spec{EventHook: func(suture.Event) {}})
			for range n {
				sup.Add(blocked{parked})
			}
			done := make(chan struct{})
			go func() { sup.Serve(ctx); close(done) }()
			return func() { <-done }
		}},
	}
	for _, c := range cases {
		for _, n := range []int{1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("runner=%s/parked=%s/n=%d", c.runner, c.parked, n), func(b *testing.B) {
				var perLoop float64
				for range b.N {
					b.StopTimer()
					runtime.GC()
					before := memInUse()
					ctx, cancel := context.WithCancel(context.Background())
					var parked sync.WaitGroup
					parked.Add(n)
					wait := c.park(ctx, n, &parked)
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
