package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/go-co-op/gocron/v2"
)

const (
	w5Jobs   = 1000
	w5Period = 100 * time.Millisecond
	w5Length = 10 * time.Second
)

// lateness collects, per job, how late each run started against the job's
// ideal grid: its first run's due time plus k periods.
type lateness struct {
	mu   sync.Mutex
	late []time.Duration
}

func (l *lateness) add(d time.Duration) {
	l.mu.Lock()
	l.late = append(l.late, d)
	l.mu.Unlock()
}

func (l *lateness) report(b *testing.B, cpu time.Duration, wall time.Duration) {
	slices.Sort(l.late)
	if len(l.late) == 0 {
		b.Fatal("no runs")
	}
	var sum time.Duration
	for _, d := range l.late {
		sum += d
	}
	b.ReportMetric(float64(sum.Microseconds())/float64(len(l.late)), "mean-late-µs")
	b.ReportMetric(float64(l.late[len(l.late)*99/100].Microseconds()), "p99-late-µs")
	b.ReportMetric(100*float64(cpu)/float64(wall), "%core")
	b.ReportMetric(float64(len(l.late))/wall.Seconds(), "runs/s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkW5 runs 1,000 jobs every 100 ms for 10 s.
func BenchmarkW5(b *testing.B) {
	b.Run("runner=backi.Every", func(b *testing.B) {
		for range b.N {
			var l lateness
			ctx, cancel := context.WithTimeout(context.Background(), w5Length)
			var wg sync.WaitGroup
			cpu0, wall0 := cpuTime(), time.Now()
			for i := range w5Jobs {
				w := backi.Loop(fmt.Sprint("job", i), func(ctx context.Context) error {
					due, _ := backi.ScheduledFor(ctx)
					l.add(time.Since(due))
					return nil
				}, backi.WithSchedule(backi.Every(w5Period)), backi.WithLogger(quiet))
				wg.Go(func() { w.Run(ctx) })
			}
			wg.Wait()
			cancel()
			l.report(b, cpuTime()-cpu0, time.Since(wall0))
		}
	})
	b.Run("runner=gocron", func(b *testing.B) {
		for range b.N {
			var l lateness
			s, err := gocron.NewScheduler()
			if err != nil {
				b.Fatal(err)
			}
			cpu0, wall0 := cpuTime(), time.Now()
			for range w5Jobs {
				var first time.Time
				k := 0
				if _, err := s.NewJob(gocron.DurationJob(w5Period), gocron.NewTask(func() {
					now := time.Now()
					if first.IsZero() {
						first = now // the grid starts at the first run
					}
					l.add(now.Sub(first.Add(time.Duration(k) * w5Period)))
					k++
				})); err != nil {
					b.Fatal(err)
				}
			}
			s.Start()
			time.Sleep(w5Length)
			if err := s.Shutdown(); err != nil {
				b.Fatal(err)
			}
			l.report(b, cpuTime()-cpu0, time.Since(wall0))
		}
	})
}
