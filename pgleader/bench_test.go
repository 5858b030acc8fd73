package pgleader_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgleader"
)

// BenchmarkSessionsAtRest measures the CPU share of one core that two
// sessions of 200 names each use at rest, in one process: one leads every
// name, the other campaigns for them all. Each replica of a service runs one
// of the two, so each uses at most the figure.
func BenchmarkSessionsAtRest(b *testing.B) {
	url := pgtest.URL(b)
	for range b.N {
		prefix := unique("rest")
		leader, err := pgleader.NewSession(url)
		if err != nil {
			b.Fatal(err)
		}
		follower, err := pgleader.NewSession(url)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		for i := range 200 {
			name := fmt.Sprintf("%s-%d", prefix, i)
			e, _ := leader.Elector(name)
			term, err := e.Campaign(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer term.Resign(context.Background())
			f, _ := follower.Elector(name)
			if os.Getenv("NOFOLLOW") == "" {
				go f.Campaign(ctx)
			}
		}
		time.Sleep(time.Second)
		before, start := cpu(), time.Now()
		time.Sleep(3 * time.Second)
		b.ReportMetric(100*float64(cpu()-before)/float64(time.Since(start)), "%core")
		cancel()
	}
}

// cpu is the CPU time the process has used.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
