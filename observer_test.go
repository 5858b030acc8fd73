package backi_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// observed records what an Observer is told.
type observed struct {
	mu     sync.Mutex
	events []string
}

type spanKey struct{}

func (o *observed) add(s string) {
	o.mu.Lock()
	o.events = append(o.events, s)
	o.mu.Unlock()
}

func (o *observed) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	o.add(fmt.Sprintf("start %s#%d", e.Worker, e.Iteration))
	return context.WithValue(ctx, spanKey{}, e.Iteration)
}

func (o *observed) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	o.add(fmt.Sprintf("end %s#%d %v %v span=%v", e.Worker, e.Iteration, r.Result, r.Duration, ctx.Value(spanKey{})))
}

func (o *observed) StateChange(worker string, loop int, from, to backi.State) {
	o.add(fmt.Sprintf("state %s/%d %v -> %v", worker, loop, from, to))
}

func (o *observed) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

func TestObserverSeesEveryIterationAndState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &observed{}
		n := 0
		w := backi.Loop("obs", func(ctx context.Context) error {
			if ctx.Value(spanKey{}) == nil {
				t.Error("the iteration does not run in the context IterationStart returned")
			}
			time.Sleep(time.Second)
			switch n++; n {
			case 1:
				return nil
			case 2:
				return backi.ErrNoWork
			case 3:
				return errFail
			}
			return backi.Stop(nil)
		}, backi.WithObserver(obs), backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"state obs/0 new -> running",
			"start obs#1", "end obs#1 success 1s span=1",
			"start obs#2", "end obs#2 no_work 1s span=2",
			"state obs/0 running -> idle",
			"state obs/0 idle -> running",
			"start obs#3", "end obs#3 failure 1s span=3",
			"state obs/0 running -> backing off",
			"state obs/0 backing off -> running",
			"start obs#4", "end obs#4 stopped 1s span=4",
			"state obs/0 running -> stopped",
		}
		if got := obs.all(); !slices.Equal(got, want) {
			t.Fatalf("observed\n%q\nwant\n%q", got, want)
		}
	})
}

func TestHostObserverAndStuckState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &observed{}
		ctx, cancel := context.WithCancel(t.Context())
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet), backi.WithObserver(obs), backi.WithStuckAfter(time.Minute))
		h.Add(backi.Loop("slow", func(ctx context.Context) error { <-ctx.Done(); return nil }))
		time.AfterFunc(2*time.Minute, cancel)
		if err := h.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(obs.all(), "state slow/0 running -> stuck") || !slices.Contains(obs.all(), "start slow#1") {
			t.Fatalf("the host's observer saw %q", obs.all())
		}
	})
}

// TestLoopDoesNotAllocatePerIteration runs an empty Loop for 1,000 and for
// 101,000 iterations: the second may not allocate more.
func TestLoopDoesNotAllocatePerIteration(t *testing.T) {
	mallocs := func(n int) uint64 {
		i := 0
		w := backi.Loop("hot", func(context.Context) error {
			if i++; i == n {
				return backi.Stop(nil)
			}
			return nil
		}, backi.WithLogger(quiet))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := w.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	mallocs(10) // warm up
	short, long := mallocs(1_000), mallocs(101_000)
	if long > short+100 {
		t.Fatalf("100,000 more iterations made %d more allocations", long-short)
	}
}
