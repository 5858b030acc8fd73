package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
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
// run.sh runs each case in a process of its own, and W2 and W2Paired with
// GODEBUG=adaptivestackstart=0. Otherwise the runtime starts new goroutines
// on a stack as large as the average it found at its last collection, which
// counts the benchmark's own deep goroutines: bare goroutines that need 2 KiB
// then start on 4 KiB in one round and on 2 KiB in the next, and stopping them
// costs more in the rounds with the larger stacks. With it, each goroutine
// has the stack it needs.
func BenchmarkW2(b *testing.B) {
	for _, c := range w2Cases() {
		for _, n := range []int{1_000, 10_000, 100_000} {
			b.Run(fmt.Sprintf("runner=%s/parked=%s/n=%d", c.runner, c.parked, n), func(b *testing.B) {
				var perLoop float64
				for range b.N {
					b.StopTimer()
					var cancel, wait func()
					cancel, wait, perLoop = parkAll(c.park, n)
					b.StartTimer()
					cancel()
					wait()
				}
				b.ReportMetric(perLoop, "B/loop")
			})
		}
	}
}

// BenchmarkW2Paired measures the same stops as W2 at n = 10,000, for bare
// goroutines and backi, in turns within one process: each op stops both, in
// an order that alternates, so that both see the same machine at the same
// moment. It reports each one's mean time and the median of the ratios of
// the pairs, which a moment when the whole machine is slow moves least; ns/op
// is the two stops together. Both runners of a pair are parked in the same
// place: timers stopped by loops parked between units leave the runtime work
// that would fall on the next stop measured.
func BenchmarkW2Paired(b *testing.B) {
	const n = 10_000
	cases := w2Cases()
	find := func(runner, parked string) w2Case {
		i := slices.IndexFunc(cases, func(c w2Case) bool { return c.runner == runner && c.parked == parked })
		return cases[i]
	}
	for _, parked := range []string{"in-work", "between"} {
		b.Run("parked="+parked, func(b *testing.B) {
			pair := [2]w2Case{find("bare", parked), find("backi", parked)}
			var total [2]time.Duration
			ratios := make([]float64, b.N)
			for i := range b.N {
				var took [2]time.Duration
				for k := range 2 {
					j := (i + k) % 2
					b.StopTimer()
					cancel, wait, _ := parkAll(pair[j].park, n)
					b.StartTimer()
					start := time.Now()
					cancel()
					wait()
					took[j] = time.Since(start)
				}
				total[0] += took[0]
				total[1] += took[1]
				ratios[i] = float64(took[1]) / float64(took[0])
			}
			slices.Sort(ratios)
			ms := func(d time.Duration) float64 { return float64(d) / float64(b.N) / 1e6 }
			b.ReportMetric(ms(total[0]), "bare-ms/op")
			b.ReportMetric(ms(total[1]), "backi-ms/op")
			b.ReportMetric(ratios[b.N/2], "backi/bare")
		})
	}
}

// A w2Case starts n parked loops under ctx, calls parked.Done once for each
// as it waits, and returns a function that waits until all have returned.
type w2Case struct {
	runner, parked string
	park           func(ctx context.Context, n int, parked *sync.WaitGroup) (wait func())
}

func w2Cases() []w2Case {
	goroutines := func(loop func(ctx context.Context, parked *sync.WaitGroup)) func(context.Context, int, *sync.WaitGroup) func() {
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
	return []w2Case{
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
}

// parkAll starts the case's n loops, after a collection, and returns once all
// are parked: with the function that stops them, the one that waits until
// they have returned, and the memory each parked loop holds.
func parkAll(park func(context.Context, int, *sync.WaitGroup) func(), n int) (cancel, wait func(), perLoop float64) {
	runtime.GC()
	before := memInUse()
	ctx, cancelCtx := context.WithCancel(context.Background())
	var parked sync.WaitGroup
	parked.Add(n)
	wait = park(ctx, n, &parked)
	parked.Wait()
	runtime.GC()
	return cancelCtx, wait, float64(memInUse()-before) / float64(n)
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
