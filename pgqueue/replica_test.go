package pgqueue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5/pgxpool"
)

// replicaMain runs this test binary as one replica of a service that
// consumes the queue "replicated", when the environment says so: each job's
// run is recorded in the table runs. It reports whether it ran.
func replicaMain() bool {
	id := os.Getenv("PGQUEUE_REPLICA")
	if id == "" {
		return false
	}
	schema := os.Getenv("PGQUEUE_SCHEMA")
	pool, err := pgxpool.New(context.Background(), os.Getenv("PGQUEUE_URL"))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	q, err := pgqueue.New(pool, pgqueue.WithSchema(schema))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	// Each job's work, the batch and the loops: PGQUEUE_WORKLOAD may say
	// otherwise, as "200ms 10 1".
	work, batch, loops := 2*time.Millisecond, 20, 2
	if f := strings.Fields(os.Getenv("PGQUEUE_WORKLOAD")); len(f) == 3 {
		var errs [3]error
		work, errs[0] = time.ParseDuration(f[0])
		batch, errs[1] = strconv.Atoi(f[1])
		loops, errs[2] = strconv.Atoi(f[2])
		if err := errors.Join(errs[:]...); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
	}
	w := pgqueue.Worker(q, "replicated", func(ctx context.Context, j *pgqueue.Job) error {
		if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.runs (job, replica) VALUES ($1, $2)`, j.ID, id); err != nil {
			return err
		}
		time.Sleep(work) // some work
		return nil
	}, pgqueue.WithLease(time.Second), pgqueue.WithBatch(batch), pgqueue.WithWorkerOptions(backi.WithConcurrency(loops)))
	h := backi.NewHost(backi.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	h.Add(q, w)
	fmt.Println("ready")
	if err := h.Run(context.Background()); err != nil {
		os.Exit(3)
	}
	os.Exit(0)
	return true
}

// Three replicas share the queue; kill -9 of one in the middle loses no job:
// every job runs, and only the killed replica's batches in flight run twice.
func TestKill9LosesNoJob(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.runs (job bigint, replica text)`); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	jobs := make([]pgqueue.NewJob, n)
	for i := range jobs {
		jobs[i] = pgqueue.NewJob{Queue: "replicated"}
	}
	if _, err := q.EnqueueMany(ctx, pool, jobs); err != nil {
		t.Fatal(err)
	}
	procs := map[string]*exec.Cmd{}
	t.Cleanup(func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	})
	for _, id := range []string{"a", "b", "c"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PGQUEUE_REPLICA="+id, "PGQUEUE_SCHEMA="+schema, "PGQUEUE_URL="+poolURL(pool))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[id] = cmd
		if s := bufio.NewScanner(out); !s.Scan() || s.Text() != "ready" {
			t.Fatalf("replica %s did not start", id)
		}
	}
	runs := func(where string) int {
		var c int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.runs `+where).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	eventually(t, "a third of the jobs run", func() bool { return runs("") >= n/3 })
	procs["a"].Process.Signal(syscall.SIGKILL)
	procs["a"].Wait()
	delete(procs, "a")
	killed := time.Now()
	eventually(t, "the queue drained", func() bool { return count(t, pool, schema, -1) == 0 })
	t.Logf("drained %v after the kill", time.Since(killed))

	var distinct, total, twice int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT job), count(*), count(*) - count(DISTINCT job) FROM `+schema+`.runs`).Scan(&distinct, &total, &twice); err != nil {
		t.Fatal(err)
	}
	if distinct != n {
		t.Fatalf("%d of %d jobs ran: some were lost", distinct, n)
	}
	// At most the killed replica's two batches in flight run again.
	if twice > 2*20 {
		t.Fatalf("%d runs were repeats, more than the killed replica held", twice)
	}
	if runs(`WHERE replica = 'a'`) == 0 || runs(`WHERE replica <> 'a'`) == 0 {
		t.Fatal("the jobs were not shared between the replicas")
	}
	t.Logf("%d runs for %d jobs: %d repeated after the kill", total, n, twice)
}

// poolURL is the connection string of pool.
func poolURL(pool *pgxpool.Pool) string {
	return strings.TrimSpace(pool.Config().ConnString())
}
