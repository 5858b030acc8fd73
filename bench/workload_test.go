// Package bench compares backi with its peers on the same workloads, in one
// run on one machine. It is a module of its own so that the peers never enter
// backi's go.mod. Run everything with ./run.sh; RESULTS.md has the figures.
package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDone = errors.New("done")

// unit is the workload of W1: an empty unit of work that tells its runner to
// stop after n calls. Every runner calls the same function value.
func unit(n int) func(context.Context) error {
	i := 0
	return func(context.Context) error {
		if i++; i >= n {
			return errDone
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

// cpuShare starts a workload under a fresh context, lets it warm up, then
// measures the CPU share of one core that the whole process uses over
// length. mark, if not nil, is called as the measured window opens and as it
// closes. The workload is then cancelled; start's result waits until all of
// it has returned.
func cpuShare(start func(ctx context.Context) (wait func()), warm, length time.Duration, mark func()) (share float64, wall time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	wait := start(ctx)
	time.Sleep(warm)
	if mark != nil {
		mark()
	}
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(length)
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	if mark != nil {
		mark()
	}
	cancel()
	wait()
	return 100 * float64(cpu) / float64(wall), wall
}

// loops returns a start function for cpuShare that runs loop n times, each
// in a goroutine of its own.
func loops(n int, loop func(ctx context.Context)) func(context.Context) func() {
	return func(ctx context.Context) func() {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() { loop(ctx) })
		}
		return wg.Wait
	}
}
