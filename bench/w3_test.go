package bench

import (
	"context"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/go-co-op/gocron/v2"
	"k8s.io/apimachinery/pkg/util/wait"
)

const (
	w3Loops  = 1000
	w3Poll   = time.Second // how often a runner without idle waits of its own looks for work
	w3Warmup = time.Second
	w3Length = 2 * time.Second
)

// BenchmarkW3 runs 1,000 loops that find nothing to do, each runner as it
// waits for work: the hand-written loop and wait.UntilWithContext look every
// second, gocron runs a job every second, and backi, with its defaults, idles
// after ErrNoWork with waits that grow from 1 s to 30 s. It reports the CPU
// share of one core that the whole process uses, measured for 2 s after 1 s
// of warm-up. suture is left out: it runs services and has no wait of its own
// between units of work.
func BenchmarkW3(b *testing.B) {
	nothing := func() {} // finding no work costs the same under every runner
	cases := []struct {
		runner string
		start  func(ctx context.Context) (wait func())
	}{
		{"bare", loops(w3Loops, func(ctx context.Context) {
			t := time.NewTicker(w3Poll)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					nothing()
				}
			}
		})},
		{"wait.UntilWithContext", loops(w3Loops, func(ctx context.Context) {
			wait.UntilWithContext(ctx, func(context.Context) { nothing() }, w3Poll)
		})},
		{"gocron", func(ctx context.Context) func() {
			s, err := gocron.NewScheduler()
			if err != nil {
				b.Fatal(err)
			}
			for range w3Loops {
				if _, err := s.NewJob(gocron.DurationJob(w3Poll), gocron.NewTask(nothing)); err != nil {
					b.Fatal(err)
				}
			}
			s.Start()
			return func() {
				<-ctx.Done()
				if err := s.Shutdown(); err != nil {
					b.Error(err)
				}
			}
		}},
		{"backi", loops(w3Loops, func(ctx context.Context) {
			backi.Loop("w3", func(context.Context) error {
				nothing()
				return backi.ErrNoWork
			}, backi.WithLogger(quiet)).Run(ctx)
		})},
	}
	for _, c := range cases {
		b.Run("runner="+c.runner, func(b *testing.B) {
			for range b.N {
				share, _ := cpuShare(c.start, w3Warmup, w3Length, nil)
				b.ReportMetric(share, "%core")
			}
		})
	}
}
