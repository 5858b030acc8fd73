package pgleader_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgleader"
)

// BenchmarkSessionsAtRest measures the CPU share of one core that sessions of
// 200 names use at rest: one that leads every name, and beside it one that
// campaigns for them all, in one process. A follower's share is the
// difference.
func BenchmarkSessionsAtRest(b *testing.B) {
	url := pgtest.URL(b)
	for _, follower := range []bool{false, true} {
		b.Run(fmt.Sprintf("follower=%v", follower), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(atRest(b, url, follower), "%core")
			}
		})
	}
}

// atRest leads 200 names on one session, and with follower campaigns for
// them on another, and returns the process's CPU share over 3 s at rest.
func atRest(b *testing.B, url string, follower bool) float64 {
	leader, err := pgleader.NewSession(url)
	if err != nil {
		b.Fatal(err)
	}
	other, err := pgleader.NewSession(url)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := unique("rest")
	terms := make([]backi.Term, 200)
	var wg sync.WaitGroup
	for i := range terms {
		e, _ := leader.Elector(fmt.Sprintf("%s-%d", prefix, i))
		wg.Go(func() { terms[i], _ = e.Campaign(ctx) })
	}
	wg.Wait()
	for i := range terms {
		if f, _ := other.Elector(fmt.Sprintf("%s-%d", prefix, i)); follower {
			go f.Campaign(ctx)
		}
	}
	defer func() {
		cancel() // the follower stops campaigning first
		for _, t := range terms {
			if t != nil {
				t.Resign(context.Background())
			}
		}
	}()
	time.Sleep(time.Second)
	before, start := cpu(), time.Now()
	time.Sleep(3 * time.Second)
	return 100 * float64(cpu()-before) / float64(time.Since(start))
}

// cpu is the CPU time the process has used.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
