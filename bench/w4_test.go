package bench

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/thejerf/suture/v4"
	"k8s.io/apimachinery/pkg/util/wait"
)

const (
	w4Loops  = 1000
	w4Warmup = 3 * time.Second // for backoffs to grow and start-up to pass
	w4Length = 3 * time.Second // measured
)

var errAlways = errors.New("always fails")

// lines counts log lines, whatever writes them.
type lines struct{ n atomic.Int64 }

func (l *lines) Write(p []byte) (int, error) { l.n.Add(1); return len(p), nil }

// countingHandler counts slog records as lines.
type countingHandler struct{ l *lines }

// Enabled takes Info and above, as slog's default handler does.
func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h countingHandler) Handle(context.Context, slog.Record) error {
	h.l.n.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// BenchmarkW4 runs 1,000 loops that always fail, or always panic, under each
// runner's defaults, and measures 3 s after 3 s of warm-up; where a runner needs a choice (the period of
// wait.UntilWithContext), the common one is taken. A failure is logged by the
// work function where the runner does not log it itself.
func BenchmarkW4(b *testing.B) {
	type runner struct {
		name string
		run  func(ctx context.Context, panics bool, n *atomic.Int64, out *lines)
	}
	runners := []runner{
		{"bare", func(ctx context.Context, panics bool, n *atomic.Int64, out *lines) {
			lg := log.New(out, "", 0)
			for ctx.Err() == nil {
				n.Add(1)
				lg.Print(errAlways) // no backoff: the hand-written loop's usual bug
			}
		}},
		{"wait.UntilWithContext(1s)", func(ctx context.Context, panics bool, n *atomic.Int64, out *lines) {
			lg := log.New(out, "", 0)
			wait.UntilWithContext(ctx, func(ctx context.Context) {
				n.Add(1)
				lg.Print(errAlways)
			}, time.Second)
		}},
		{"suture", func(ctx context.Context, panics bool, n *atomic.Int64, out *lines) {
			lg := log.New(out, "", 0)
			s := suture.New("w4", suture.Spec{EventHook: func(e suture.Event) { lg.Print(e) }})
			s.Add(failing{n, panics})
			s.Serve(ctx)
		}},
		{"backi", func(ctx context.Context, panics bool, n *atomic.Int64, out *lines) {
			w := backi.Loop("w4", func(ctx context.Context) error {
				n.Add(1)
				if panics {
					panic(errAlways)
				}
				return errAlways
			}, backi.WithLogger(slog.New(countingHandler{out})))
			w.Run(ctx)
		}},
	}
	for _, panics := range []bool{false, true} {
		for _, r := range runners {
			if panics && (r.name == "bare" || r.name == "wait.UntilWithContext(1s)") {
				continue // a panic there ends the process
			}
			kind := "fail"
			if panics {
				kind = "panic"
			}
			b.Run(fmt.Sprintf("%s/runner=%s", kind, r.name), func(b *testing.B) {
				for range b.N {
					var n atomic.Int64
					var out lines
					var iters, logged int64
					mark := func() { // both ends of the window: the counts in between
						iters, logged = n.Load()-iters, out.n.Load()-logged
					}
					share, wall := cpuShare(loops(w4Loops, func(ctx context.Context) { r.run(ctx, panics, &n, &out) }),
						w4Warmup, w4Length, mark)
					b.ReportMetric(share, "%core")
					b.ReportMetric(float64(iters)/wall.Seconds(), "iterations/s")
					b.ReportMetric(float64(logged)/wall.Seconds(), "lines/s")
				}
			})
		}
	}
}

// failing is a suture service that always fails, or panics.
type failing struct {
	n      *atomic.Int64
	panics bool
}

func (f failing) Serve(ctx context.Context) error {
	f.n.Add(1)
	if f.panics {
		panic(errAlways)
	}
	return errAlways
}
