package bench

// The queue benchmarks compare pgqueue, consumed by a backi worker, with
// riverqueue/river on the pgx driver, on the same PostgreSQL server in the
// same run: BACKI_PG_URL, or postgres://postgres@127.0.0.1:5432/test. Without
// a server they are skipped, or fail when CI=true. Each runner works in a
// fresh schema of its own, dropped after. Every run reports the CPU time of
// this process per 1,000 jobs (cpu-ms/1kjobs) and, when the server runs on
// this machine, that of the whole PostgreSQL server (pgcpu-ms/1kjobs, read
// from /proc: it counts every session of the server, so keep it otherwise
// idle).
//
// Run them alone, small (5,000 jobs, 3 seconds of steady state), with
//
//	cd bench
//	BENCH_QUEUE_JOBS=5000 BENCH_QUEUE_SECONDS=3 go test -run '^$' -bench 'Queue' -benchtime 1x -count 1 .
//
// and as run.sh does, with -count 3 and the defaults (100,000 jobs, 10
// seconds), in about 9 minutes on 2 cores, 5 of them River's default client
// working off its jobs at 1,000 a second:
//
//	go test -run '^$' -bench 'Queue' -count 3 -timeout 60m .

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkQueueBurnDown works off N no-op jobs (BENCH_QUEUE_JOBS, 100,000
// by default), enqueued beforehand (not timed), in one process, and reports
// the jobs per second from the consumer's start until it has stopped with
// every outcome recorded.
//
// runner=backi is one pgqueue.Worker of 4 loops (backi.WithConcurrency(4))
// claiming up to 500 jobs at a time (WithBatch(500)), with the Queue run as a
// service. On 2 cores, with 100,000 jobs and 4 loops, WithBatch(500) worked off
// about 1.5 times as many jobs a second as the default WithBatch(100), with two
// thirds of the server's CPU per job; WithBatch(1000) did no better. 2 and 4
// loops were within the noise of each other, 1 and 8 slower (1 with the
// least server CPU); 4 kept the latency lower under a steady load
// (BenchmarkQueueLatency).
//
// runner=river-default is a River client with 100 workers and its default
// fetch settings (FetchCooldown 100ms, FetchPollInterval 1s), which bound it
// near 1,000 jobs a second: each fetch takes at most the free worker slots,
// at most once per FetchCooldown. runner=river-tuned has the settings of
// River's own benchmark (cmd/river/riverbench): 2,000 workers, FetchCooldown
// 2ms, FetchPollInterval 20ms (FetchCooldown 1ms did no better). Every
// runner has a pool of 20 connections.
//
// Both handlers decode the job's JSON ({"n":123}), which River does for
// every job. The server of this project runs with autovacuum off, so nothing
// analyzes the new tables: the benchmark runs ANALYZE after the enqueue, as
// autovacuum would on a production server.
func BenchmarkQueueBurnDown(b *testing.B) {
	n := envInt(b, "BENCH_QUEUE_JOBS", 100_000)
	ctx := context.Background()
	for _, r := range queueRunners {
		b.Run("runner="+r.name, func(b *testing.B) {
			var t tally
			for range b.N {
				b.StopTimer()
				q := r.new(b)
				if err := q.fill(ctx, n); err != nil {
					b.Fatal(err)
				}
				if err := q.analyze(ctx); err != nil {
					b.Fatal(err)
				}
				var ran atomic.Int64
				all := make(chan struct{})
				b.StartTimer()
				since := markNow()
				stop, err := q.start(ctx, func(int) {
					if ran.Add(1) == int64(n) {
						close(all)
					}
				})
				if err != nil {
					b.Fatal(err)
				}
				select {
				case <-all:
				case <-time.After(5 * time.Minute):
				}
				err = stop()
				t.add(since, n)
				b.StopTimer()
				if got := ran.Load(); got < int64(n) || err != nil {
					b.Fatalf("%d of %d jobs ran in 5 minutes; stop: %v", got, n, err)
				}
				if left, err := q.left(ctx); left != 0 || err != nil {
					b.Fatalf("%d jobs left after the burn-down (%v)", left, err)
				}
				q.close()
				b.StartTimer()
			}
			t.report(b, true)
		})
	}
}

// BenchmarkQueueLatency offers 1,000 jobs a second for
// BENCH_QUEUE_SECONDS (10 by default) after a second of warm-up: producers
// enqueue job k at k milliseconds, each in a transaction of its own. It
// reports, for the jobs enqueued after the warm-up, the time from the return
// of their enqueue's commit to the start of their handler (p50-ms, p99-ms),
// and the CPU per 1,000 jobs over the steady state, producers included:
// producing alone cost, with either runner, 400 to 500 ms of this process's
// CPU and 400 to 600 ms of the server's per 1,000 jobs on a 2-core virtual
// machine (a transaction each, with its commit's flush), so compare the
// differences.
//
// The commit time cannot be in the payload, which is written before the
// commit: the payload carries the job's number, and the producer records the
// time its commit returned under that number.
//
// runner=backi runs as in BenchmarkQueueBurnDown: the Queue, as a service,
// listens for the notifications enqueues send (LISTEN/NOTIFY) and wakes one
// idle loop of the worker for each (Worker.WakeOne); the loops otherwise
// poll every second (the default Poll). River's clients are those of BenchmarkQueueBurnDown; both listen
// for the insert notifications River sends, at most one per queue and
// FetchCooldown, and fetch at most once per FetchCooldown.
func BenchmarkQueueLatency(b *testing.B) {
	length := time.Duration(envInt(b, "BENCH_QUEUE_SECONDS", 10)) * time.Second
	const (
		warm      = time.Second
		every     = time.Millisecond
		producers = 4
	)
	ctx := context.Background()
	for _, r := range queueRunners {
		b.Run("runner="+r.name, func(b *testing.B) {
			var t tally
			var latencies []float64 // milliseconds
			for range b.N {
				q := r.new(b)
				jobs, first := int((warm+length)/every), int(warm/every)
				committed, started := make([]atomic.Int64, jobs), make([]atomic.Int64, jobs)
				var ran atomic.Int64
				all := make(chan struct{})
				stop, err := q.start(ctx, func(n int) {
					started[n].Store(time.Now().UnixNano())
					if ran.Add(1) == int64(jobs) {
						close(all)
					}
				})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, producers)
				for p := range producers {
					wg.Go(func() {
						for n := p; n < jobs; n += producers {
							time.Sleep(time.Until(t0.Add(time.Duration(n) * every)))
							if errs[p] = q.enqueueTx(ctx, n); errs[p] != nil {
								return
							}
							committed[n].Store(time.Now().UnixNano())
						}
					})
				}
				time.Sleep(time.Until(t0.Add(warm)))
				since := markNow()
				time.Sleep(time.Until(t0.Add(warm + length)))
				t.add(since, jobs-first)
				wg.Wait()
				if late := time.Since(t0.Add(warm + length)); late > length/100 {
					b.Logf("the producers ended %v behind schedule", late)
				}
				select {
				case <-all:
				case <-time.After(time.Minute):
				}
				stopErr := stop()
				for _, err := range append(errs, stopErr) {
					if err != nil {
						b.Fatal(err)
					}
				}
				if got := ran.Load(); got < int64(jobs) {
					b.Fatalf("%d of %d jobs ran", got, jobs)
				}
				for n := first; n < jobs; n++ {
					latencies = append(latencies, float64(started[n].Load()-committed[n].Load())/1e6)
				}
				q.close()
			}
			slices.Sort(latencies)
			b.ReportMetric(latencies[len(latencies)/2], "p50-ms")
			b.ReportMetric(latencies[len(latencies)*99/100], "p99-ms")
			t.report(b, false)
		})
	}
}

// BenchmarkQueueEnqueue enqueues jobs from one goroutine: one job per
// statement without a transaction of the caller's (op=single), and 1,000
// jobs per call (op=batch1000). backi uses Enqueue and EnqueueMany on the
// pool: one statement each. River's Insert and InsertMany open a transaction
// of their own (BEGIN, the insert, a notification at most every 100ms,
// COMMIT); InsertMany inserts from arrays (INSERT ... SELECT unnest), and
// InsertManyFast with COPY FROM, without returning the rows.
func BenchmarkQueueEnqueue(b *testing.B) {
	ctx := context.Background()
	type enqueue func(ctx context.Context, n, count int) error
	cases := []struct {
		name  string
		count int
		new   func(tb testing.TB) (enqueue, func())
	}{
		{"op=single/runner=backi", 1, func(tb testing.TB) (enqueue, func()) {
			r := newBackiRunner(tb)
			return func(ctx context.Context, n, _ int) error { return r.enqueue(ctx, n) }, r.close
		}},
		{"op=single/runner=river", 1, func(tb testing.TB) (enqueue, func()) {
			r := newRiverRunner(tb, riverDefault)
			return func(ctx context.Context, n, _ int) error { return r.enqueue(ctx, n) }, r.close
		}},
		{"op=batch1000/runner=backi", 1000, func(tb testing.TB) (enqueue, func()) {
			r := newBackiRunner(tb)
			return r.enqueueMany, r.close
		}},
		{"op=batch1000/runner=river-InsertMany", 1000, func(tb testing.TB) (enqueue, func()) {
			r := newRiverRunner(tb, riverDefault)
			return r.enqueueMany, r.close
		}},
		{"op=batch1000/runner=river-InsertManyFast", 1000, func(tb testing.TB) (enqueue, func()) {
			r := newRiverRunner(tb, riverDefault)
			return r.enqueueManyFast, r.close
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			enqueue, close := c.new(b)
			defer close()
			var t tally
			n := 0
			since := markNow()
			for b.Loop() {
				if err := enqueue(ctx, n, c.count); err != nil {
					b.Fatal(err)
				}
				n += c.count
			}
			t.add(since, n)
			t.report(b, true)
		})
	}
}
