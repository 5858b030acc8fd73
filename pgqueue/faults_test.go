package pgqueue_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5/pgxpool"
)

// drainUnder runs n jobs on a worker of q with opts (three loops, a lease
// of 2s), with the listener, records each run in schema.runs through obs,
// calls fault once a third of the jobs ran, and checks that every job ran
// and the queue drained.
func drainUnder(t *testing.T, q *pgqueue.Queue, obs *pgxpool.Pool, schema string, n int, fault func(), opts ...pgqueue.WorkerOption) {
	t.Helper()
	ctx := context.Background()
	if _, err := obs.Exec(ctx, `CREATE TABLE `+schema+`.runs (job bigint)`); err != nil {
		t.Fatal(err)
	}
	enqueueN(t, q, obs, "d", n)
	opts = append([]pgqueue.WorkerOption{pgqueue.WithLease(2 * time.Second), pgqueue.WithBatch(20), pgqueue.WithPoll(50 * time.Millisecond),
		pgqueue.WithRetryBackoff(backi.ConstantBackoff(50 * time.Millisecond)),
		pgqueue.WithWorkerOptions(backi.WithConcurrency(3), backi.WithBackoff(backi.ConstantBackoff(100*time.Millisecond)), backi.WithLogger(quiet))}, opts...)
	w := pgqueue.Worker(q, "d", func(ctx context.Context, j *pgqueue.Job) error {
		if _, err := obs.Exec(ctx, `INSERT INTO `+schema+`.runs (job) VALUES ($1)`, j.ID); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
		return nil
	}, opts...)
	run(t, q, w)
	runs := func() (distinct, total int) {
		if err := obs.QueryRow(ctx, `SELECT count(DISTINCT job), count(*) FROM `+schema+`.runs`).Scan(&distinct, &total); err != nil {
			t.Fatal(err)
		}
		return
	}
	within(t, 20*time.Second, "a third of the jobs run", func() bool { d, _ := runs(); return d >= n/3 })
	began := time.Now()
	fault()
	within(t, 30*time.Second, "the queue drained", func() bool { return count(t, obs, schema, -1) == 0 })
	d, total := runs()
	t.Logf("drained %v after the fault began; %d runs for %d jobs", time.Since(began), total, n)
	if d != n {
		t.Fatalf("%d of %d jobs ran", d, n)
	}
}

// A PostgreSQL restart in the middle of a drain loses no job, by lease or
// held in a transaction.
func TestServerRestartMidDrain(t *testing.T) {
	url, restart := pgtest.Throwaway(t)
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			var opts []pgqueue.WorkerOption
			if held {
				opts = append(opts, pgqueue.WithTransactionHeld())
			}
			q, pool, schema := setupOn(t, url, "")
			drainUnder(t, q, pool, schema, 3000, restart, opts...)
		})
	}
}

// pg_terminate_backend, again and again, of every connection of the
// worker's pool (its loops', its heartbeats', the listener's) in the middle
// of a drain loses no job.
func TestTerminateBackendsMidDrain(t *testing.T) {
	url := pgtest.URL(t)
	for _, held := range []bool{false, true} {
		t.Run(fmt.Sprint("held=", held), func(t *testing.T) {
			var opts []pgqueue.WorkerOption
			if held {
				opts = append(opts, pgqueue.WithTransactionHeld())
			}
			app := fmt.Sprintf("pgqueue-test-%d", rand.Uint32())
			q, _, schema := setupOn(t, url, "application_name="+app)
			obs := newPool(t, url)
			drainUnder(t, q, obs, schema, 3000, func() {
				for range 20 {
					if _, err := obs.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
						t.Fatal(err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}, opts...)
		})
	}
}

// A pool of one connection serves three loops, the listener, the
// heartbeats and handlers that write with it: no deadlock, and no job runs
// twice at once.
func TestOneConnectionForEverything(t *testing.T) {
	url := pgtest.URL(t)
	q, pool, schema := setupOn(t, url, "pool_max_conns=1")
	obs := newPool(t, url)
	enqueueN(t, q, obs, "one", 300)
	var mu sync.Mutex
	running := map[string]bool{}
	var overlaps atomic.Int32
	w := pgqueue.Worker(q, "one", func(ctx context.Context, j *pgqueue.Job) error {
		mu.Lock()
		if running[string(j.Payload)] {
			overlaps.Add(1)
		}
		running[string(j.Payload)] = true
		mu.Unlock()
		defer func() { mu.Lock(); delete(running, string(j.Payload)); mu.Unlock() }()
		_, err := pool.Exec(ctx, `SELECT pg_sleep(0.002)`)
		return err
	}, pgqueue.WithLease(time.Second), pgqueue.WithBatch(10), pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithWorkerOptions(backi.WithConcurrency(3)))
	run(t, q, w)
	within(t, 20*time.Second, "the queue drained", func() bool { return count(t, obs, schema, -1) == 0 })
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d runs overlapped another run of their job", n)
	}
}

// The listener's connection is terminated: an enqueue right after still
// wakes the idle worker within about a second (the listener connects again
// and wakes every worker), though the worker polls every 30s.
func TestListenerConnectionTerminated(t *testing.T) {
	url := pgtest.URL(t)
	app := fmt.Sprintf("pgqueue-test-%d", rand.Uint32())
	q, _, _ := setupOn(t, url, "application_name="+app)
	ctx := context.Background()
	obs := newPool(t, url)
	started := make(chan time.Time, 10)
	w := pgqueue.Worker(q, "fast", func(ctx context.Context, j *pgqueue.Job) error {
		started <- time.Now()
		return nil
	}, pgqueue.WithPoll(30*time.Second))
	run(t, q, w)
	for range 2 {
		var listeners int
		within(t, 5*time.Second, "the listener listening", func() bool {
			err := obs.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'listen%'`, app).Scan(&listeners)
			return err == nil && listeners == 1
		})
		time.Sleep(100 * time.Millisecond) // the worker idles
		if _, err := obs.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'listen%'`, app); err != nil {
			t.Fatal(err)
		}
		enqueued := time.Now()
		if _, err := q.Enqueue(ctx, obs, pgqueue.NewJob{Queue: "fast"}); err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-started:
			t.Logf("the job started %v after its enqueue", at.Sub(enqueued))
		case <-time.After(5 * time.Second):
			t.Fatal("an enqueue after the listener's connection ended did not wake the idle worker")
		}
	}
}

// startReplica starts replica id of replicaMain on schema, with workload
// (see PGQUEUE_WORKLOAD), and kills it at the test's end.
func startReplica(t *testing.T, pool *pgxpool.Pool, schema, id, workload string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGQUEUE_REPLICA="+id, "PGQUEUE_SCHEMA="+schema, "PGQUEUE_URL="+poolURL(pool), "PGQUEUE_WORKLOAD="+workload)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	if s := bufio.NewScanner(out); !s.Scan() || s.Text() != "ready" {
		t.Fatalf("replica %s did not start", id)
	}
	return cmd
}

// A replica that was paused (SIGSTOP: a long GC pause, a frozen VM) past the
// lease of its batch, while another replica rescued and took its jobs, does
// not start the jobs of that batch when it resumes: their leases are no
// longer its own.
func TestPausedReplicaStartsNoJobOfItsLapsedBatch(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.runs (job bigint, replica text, at timestamptz DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	enqueueN(t, q, pool, "replicated", 10) // one batch of a
	a := startReplica(t, pool, schema, "a", "200ms 10 1")
	within(t, 10*time.Second, "a runs its first batch", func() bool {
		var n int
		pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.runs`).Scan(&n)
		return n >= 2
	})
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	startReplica(t, pool, schema, "b", "200ms 10 1")
	time.Sleep(3 * time.Second) // three leases: b takes a's jobs
	var resumed time.Time
	if err := pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&resumed); err != nil {
		t.Fatal(err)
	}
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	within(t, 20*time.Second, "the queue drained", func() bool { return count(t, pool, schema, -1) == 0 })
	var stale int
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM `+schema+`.runs AS r WHERE r.replica = 'a' AND r.at > $1
		AND EXISTS (SELECT FROM `+schema+`.runs AS o WHERE o.job = r.job AND o.replica = 'b' AND o.at < $1)`, resumed).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Fatalf("after its pause, a started %d jobs that b had taken from it", stale)
	}
}
