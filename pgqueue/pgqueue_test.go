package pgqueue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

func TestMain(m *testing.M) {
	if replicaMain() {
		return
	}
	leakcheck.Main(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// setup returns a queue in a schema of the test's own, migrated, on a pool
// that the test closes.
func setup(t *testing.T) (*pgqueue.Queue, *pgxpool.Pool, string) {
	t.Helper()
	q, pool, schema := setupOn(t, pgtest.URL(t), "")
	if err := q.Migrate(context.Background()); err != nil { // idempotent
		t.Fatal(err)
	}
	return q, pool, schema
}

// count counts the jobs in schema in state (-1 for all).
func count(t *testing.T, pool *pgxpool.Pool, schema string, state int) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+schema+`.backi_jobs WHERE $1 < 0 OR state = $1`, state).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// run runs w until the test's end, or until stop is called.
func run(t *testing.T, services ...backi.Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
	h.Add(services...)
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("host: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually waits up to 20s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEnqueueInTheCallersTransaction(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, commit := range []bool{false, true} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := q.Enqueue(ctx, tx, pgqueue.NewJob{Queue: "mail", Payload: []byte(`{"to":"a"}`)}); err != nil {
				return err
			}
			if !commit {
				return errors.New("the business change failed")
			}
			return nil
		})
		if commit != (err == nil) {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, schema, -1); n != 1 {
		t.Fatalf("%d jobs after one committed and one rolled-back enqueue, want 1", n)
	}

	first, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "mail", UniqueKey: "welcome-7"})
	if err != nil || first.Duplicate || first.ID == 0 {
		t.Fatalf("first unique enqueue: %+v %v", first, err)
	}
	again, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "mail", UniqueKey: "welcome-7"})
	if err != nil || !again.Duplicate || again.ID != 0 {
		t.Fatalf("second enqueue of a pending key: %+v %v, want a duplicate", again, err)
	}
	other, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "sms", UniqueKey: "welcome-7"})
	if err != nil || other.Duplicate {
		t.Fatalf("the same key on another queue: %+v %v", other, err)
	}

	jobs := make([]pgqueue.NewJob, 1000)
	for i := range jobs {
		jobs[i] = pgqueue.NewJob{Queue: "bulk", Payload: []byte(fmt.Sprint(i)), UniqueKey: fmt.Sprint(i % 900)}
	}
	added, err := q.EnqueueMany(ctx, pool, jobs)
	if err != nil || added != 900 {
		t.Fatalf("EnqueueMany of 1000 jobs with 900 keys: %d, %v", added, err)
	}
	if jobs[0].MaxAttempts != 0 {
		t.Fatal("EnqueueMany changed the caller's jobs")
	}
	for _, c := range []struct {
		job  pgqueue.NewJob
		want string
	}{
		{pgqueue.NewJob{}, "queue name is empty"},
		{pgqueue.NewJob{Queue: "x", MaxAttempts: -1}, "MaxAttempts -1"},
		{pgqueue.NewJob{Queue: "x", MaxAttempts: 1 << 31}, "MaxAttempts 2147483648"},
	} {
		if _, err := q.Enqueue(ctx, pool, c.job); err == nil || !strings.HasPrefix(err.Error(), "pgqueue: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Enqueue of %+v: %v, want an error naming %s", c.job, err, c.want)
		}
		if _, err := q.EnqueueMany(ctx, pool, []pgqueue.NewJob{{Queue: "x"}, c.job}); err == nil || !strings.HasPrefix(err.Error(), "pgqueue: ") || !strings.Contains(err.Error(), "job 1") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EnqueueMany of %+v: %v, want an error naming job 1 and %s", c.job, err, c.want)
		}
	}
}

// EnqueueSQL enqueues in a database/sql transaction, as Enqueue does in a
// pgx one.
func TestEnqueueSQL(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	for _, commit := range []bool{false, true} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := q.EnqueueSQL(ctx, tx, pgqueue.NewJob{Queue: "sql", Payload: []byte("p"), Priority: 3, RunAt: time.Now().Add(time.Hour), UniqueKey: "k"})
		if err != nil || e.ID == 0 || e.Duplicate {
			t.Fatalf("EnqueueSQL: %+v, %v", e, err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var n, priority int
	var later bool
	if err := pool.QueryRow(ctx, `SELECT count(*), max(priority), bool_and(run_at > now()) FROM `+schema+`.backi_jobs`).Scan(&n, &priority, &later); err != nil {
		t.Fatal(err)
	}
	if n != 1 || priority != 3 || !later {
		t.Fatalf("%d jobs (want 1), priority %d (want 3), due later %v (want true)", n, priority, later)
	}
	if e, err := q.EnqueueSQL(ctx, db, pgqueue.NewJob{Queue: "sql", UniqueKey: "k"}); err != nil || !e.Duplicate {
		t.Fatalf("EnqueueSQL of a pending key: %+v, %v; want a duplicate", e, err)
	}
	if _, err := q.EnqueueSQL(ctx, db, pgqueue.NewJob{}); err == nil || !strings.HasPrefix(err.Error(), "pgqueue: ") {
		t.Fatalf("EnqueueSQL without a queue: %v", err)
	}
}

func TestWorkerDrainsTheQueue(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	const n = 1050
	jobs := make([]pgqueue.NewJob, n)
	for i := range jobs {
		jobs[i] = pgqueue.NewJob{Queue: "work", Payload: []byte(fmt.Sprint(i))}
	}
	if _, err := q.EnqueueMany(ctx, pool, jobs); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	w := pgqueue.Worker(q, "work", func(ctx context.Context, j *pgqueue.Job) error {
		mu.Lock()
		seen[string(j.Payload)]++
		mu.Unlock()
		return nil
	}, pgqueue.WithWorkerOptions(backi.WithConcurrency(3)))
	run(t, w)
	eventually(t, "the queue drained", func() bool { return count(t, pool, schema, -1) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("%d distinct jobs run, want %d", len(seen), n)
	}
	for p, times := range seen {
		if times != 1 {
			t.Fatalf("job %s ran %d times", p, times)
		}
	}
}

// Due jobs run by priority, higher first, then by due time, then in the
// order enqueued; jobs due later wait.
func TestJobsRunInPriorityOrder(t *testing.T) {
	q, pool, _ := setup(t)
	ctx := context.Background()
	now := time.Now()
	for _, j := range []pgqueue.NewJob{
		{Payload: []byte("low"), Priority: -1},
		{Payload: []byte("normal-later"), RunAt: now.Add(-time.Minute)},
		{Payload: []byte("high"), Priority: 5},
		{Payload: []byte("normal-earlier"), RunAt: now.Add(-time.Hour)},
		{Payload: []byte("future"), Priority: 9, RunAt: now.Add(time.Hour)},
		{Payload: []byte("high-second"), Priority: 5},
		{Payload: []byte("normal-latest")},
	} {
		j.Queue = "ordered"
		if _, err := q.Enqueue(ctx, pool, j); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var order []string
	w := pgqueue.Worker(q, "ordered", func(ctx context.Context, j *pgqueue.Job) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, string(j.Payload))
		return nil
	}, pgqueue.WithBatch(2))
	run(t, w)
	want := "high high-second normal-earlier normal-later normal-latest low"
	eventually(t, "the due jobs run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 6
	})
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

func TestFailuresRetryThenDie(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "flaky", Payload: []byte("fails twice"), MaxAttempts: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "flaky", Payload: []byte("always"), MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "flaky", Payload: []byte("panics"), MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	var attempts sync.Map
	w := pgqueue.Worker(q, "flaky", func(ctx context.Context, j *pgqueue.Job) error {
		attempts.Store(string(j.Payload), j.Attempt)
		switch string(j.Payload) {
		case "fails twice":
			if j.Attempt <= 2 {
				return fmt.Errorf("attempt %d failed", j.Attempt)
			}
			return nil
		case "panics":
			panic("bad payload")
		}
		return errors.New("downstream refuses")
	}, pgqueue.WithRetryBackoff(backi.ConstantBackoff(20*time.Millisecond)), pgqueue.WithPoll(20*time.Millisecond))
	run(t, w)
	eventually(t, "two jobs dead, one done", func() bool { return count(t, pool, schema, 2) == 2 && count(t, pool, schema, -1) == 2 })
	for job, want := range map[string]int{"fails twice": 3, "always": 3, "panics": 1} {
		if got, _ := attempts.Load(job); got != want {
			t.Errorf("%s: last attempt %v, want %d", job, got, want)
		}
	}
	var lastErr string
	if err := pool.QueryRow(ctx, `SELECT last_error FROM `+schema+`.backi_jobs WHERE payload = 'panics'`).Scan(&lastErr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lastErr, "bad payload") || !strings.Contains(lastErr, "pgqueue_test.go") {
		t.Fatalf("the panicking job's last error %q lacks the panic and its stack", lastErr)
	}
	if st := w.Status(); st.Failures != 0 {
		t.Fatalf("job failures counted as the worker's: %+v", st)
	}
}

// A handler that calls runtime.Goexit (as t.FailNow does) fails its job
// only: the jobs after it in the batch run, and the worker goes on.
func TestGoexitFailsTheJobOnly(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, p := range []string{"a", "exits", "b", "exits", "c"} {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "g", Payload: []byte(p), MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var ran atomic.Int32
	w := pgqueue.Worker(q, "g", func(ctx context.Context, j *pgqueue.Job) error {
		if string(j.Payload) == "exits" {
			runtime.Goexit()
		}
		ran.Add(1)
		return nil
	}, pgqueue.WithBatch(5), pgqueue.WithPoll(10*time.Millisecond))
	run(t, w)
	eventually(t, "three jobs done, two dead", func() bool { return count(t, pool, schema, -1) == 2 && count(t, pool, schema, 2) == 2 })
	if ran.Load() != 3 {
		t.Fatalf("%d jobs ran to their end, want 3", ran.Load())
	}
	var lastErr string
	if err := pool.QueryRow(ctx, `SELECT min(last_error) FROM `+schema+`.backi_jobs`).Scan(&lastErr); err != nil || !strings.Contains(lastErr, "Goexit") {
		t.Fatalf("the dead jobs' last error %q (%v) does not name Goexit", lastErr, err)
	}
	if st := w.Status(); st.Failures != 0 {
		t.Fatalf("the handler's Goexit counted as the worker's failure: %+v", st)
	}
}

func TestSnoozeAndCancel(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, p := range []string{"snooze", "cancel"} {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "s", Payload: []byte(p), MaxAttempts: 2}); err != nil {
			t.Fatal(err)
		}
	}
	var snoozes atomic.Int32
	var lastAttempt atomic.Int32
	w := pgqueue.Worker(q, "s", func(ctx context.Context, j *pgqueue.Job) error {
		if string(j.Payload) == "cancel" {
			return pgqueue.Cancel(errors.New("customer gone"))
		}
		lastAttempt.Store(int32(j.Attempt))
		if snoozes.Add(1) <= 3 {
			return pgqueue.Snooze(10 * time.Millisecond)
		}
		return nil
	}, pgqueue.WithPoll(10*time.Millisecond))
	run(t, w)
	eventually(t, "snoozed job done, cancelled one dead", func() bool { return count(t, pool, schema, -1) == 1 && count(t, pool, schema, 2) == 1 })
	if snoozes.Load() != 4 || lastAttempt.Load() != 1 {
		t.Fatalf("%d runs, last attempt %d: snoozes must not count as attempts", snoozes.Load(), lastAttempt.Load())
	}
}

// A handler may use the pool of the queue, even when the worker has as many
// loops as the pool has connections: a loop holds none while its jobs run.
func TestHandlersShareThePool(t *testing.T) {
	_, pool, schema := setup(t)
	ctx := context.Background()
	cfg := pool.Config()
	cfg.MaxConns = 2
	small, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(small.Close)
	q, err := pgqueue.New(small, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	var running sync.WaitGroup
	running.Add(2)
	w := pgqueue.Worker(q, "p", func(ctx context.Context, j *pgqueue.Job) error {
		if j.ID <= 2 { // the first two jobs run at once, one per loop
			running.Done()
			running.Wait()
		}
		_, err := small.Exec(ctx, `SELECT 1`)
		return err
	}, pgqueue.WithBatch(1), pgqueue.WithWorkerOptions(backi.WithConcurrency(2)))
	run(t, w)
	eventually(t, "the queue drained", func() bool { return count(t, pool, schema, -1) == 0 })
}

// A run that the iteration's deadline (backi.WithTimeout) cuts short is a
// failed attempt, not a stop: the job does not run again without end.
func TestIterationTimeoutCountsTheAttempt(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "slow", MaxAttempts: 2}); err != nil {
		t.Fatal(err)
	}
	w := pgqueue.Worker(q, "slow", func(ctx context.Context, j *pgqueue.Job) error {
		<-ctx.Done()
		return ctx.Err()
	}, pgqueue.WithRetryBackoff(backi.ConstantBackoff(10*time.Millisecond)), pgqueue.WithPoll(10*time.Millisecond),
		pgqueue.WithWorkerOptions(backi.WithTimeout(50*time.Millisecond), backi.WithBackoff(backi.ConstantBackoff(10*time.Millisecond))))
	run(t, w)
	eventually(t, "the job dead after its two attempts", func() bool { return count(t, pool, schema, 2) == 1 })
}

// A job whose lease ran out (its process died) is taken again; a long job
// keeps its lease while it runs.
func TestLeasesAreRescuedAndExtended(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.backi_jobs (queue, payload, state, attempts, lease_until) VALUES
		('l', 'orphan', 1, 1, now() - interval '1 second'), ('l', 'long', 0, 0, now())`); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string]int{}
	handler := func(ctx context.Context, j *pgqueue.Job) error {
		mu.Lock()
		runs[string(j.Payload)]++
		mu.Unlock()
		if string(j.Payload) == "long" {
			time.Sleep(2500 * time.Millisecond) // 2.5 leases
		}
		return nil
	}
	a := pgqueue.Worker(q, "l", handler, pgqueue.WithLease(time.Second), pgqueue.WithBatch(1), pgqueue.WithPoll(50*time.Millisecond))
	b := pgqueue.Worker(q, "l", handler, pgqueue.WithLease(time.Second), pgqueue.WithBatch(1), pgqueue.WithPoll(50*time.Millisecond))
	run(t, a)
	run(t, b)
	eventually(t, "both jobs done", func() bool { return count(t, pool, schema, -1) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if runs["orphan"] != 1 || runs["long"] != 1 {
		t.Fatalf("runs %v: the orphan must be rescued once, the long job run once", runs)
	}
}

// Job.Complete in the handler's own transaction: the job is done exactly
// when the handler's writes commit.
func TestCompleteInTheHandlersTransaction(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.sent (job bigint PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "tx"}); err != nil {
			t.Fatal(err)
		}
	}
	w := pgqueue.Worker(q, "tx", func(ctx context.Context, j *pgqueue.Job) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.sent VALUES ($1)`, j.ID); err != nil {
				return err
			}
			if j.ID%5 == 0 && j.Attempt == 1 {
				return errors.New("rolled back with the write")
			}
			return j.Complete(ctx, tx)
		})
	}, pgqueue.WithRetryBackoff(backi.ConstantBackoff(10*time.Millisecond)), pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithBatch(7))
	run(t, w)
	eventually(t, "every job done", func() bool { return count(t, pool, schema, -1) == 0 })
	var sent int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.sent`).Scan(&sent); err != nil || sent != 20 {
		t.Fatalf("%d effects for 20 jobs: %v", sent, err)
	}
}

// A TransactionHeld worker's handler writes in the job's transaction: a
// failure rolls its writes back, a success commits them with the job's end.
func TestTransactionHeld(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.effects (job bigint, attempt int)`); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "held", MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	w := pgqueue.Worker(q, "held", func(ctx context.Context, j *pgqueue.Job) error {
		tx, err := j.Tx(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.effects VALUES ($1, $2)`, j.ID, j.Attempt); err != nil {
			return err
		}
		switch {
		case j.ID%3 == 0 && j.Attempt == 1:
			return errors.New("fails once")
		case j.ID%7 == 0:
			panic("always panics")
		case j.ID%5 == 0:
			return j.Complete(ctx, tx) // as the worker would
		}
		return nil
	}, pgqueue.WithTransactionHeld(), pgqueue.WithRetryBackoff(backi.ConstantBackoff(10*time.Millisecond)), pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithBatch(8))
	run(t, w)
	eventually(t, "every job done or dead", func() bool { return count(t, pool, schema, -1) == count(t, pool, schema, 2) })
	var effects, firsts, dead int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE attempt = 1 AND job % 3 = 0) FROM `+schema+`.effects`).Scan(&effects, &firsts); err != nil {
		t.Fatal(err)
	}
	dead = count(t, pool, schema, 2)
	if effects != 30-dead || firsts != 0 {
		t.Fatalf("%d effects for %d jobs done (%d dead), %d of failed first attempts: failed runs must leave none", effects, 30-dead, dead, firsts)
	}
	if dead == 0 {
		t.Fatal("no job panicked to death")
	}
}

// A TransactionHeld handler that returns nil after a statement of its
// transaction failed has failed: its job is counted as failed, and the
// batch goes on.
func TestTransactionHeldHandlerIgnoringAFailedStatement(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, p := range []string{"ok", "ignores", "ok"} {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "held", Payload: []byte(p), MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	w := pgqueue.Worker(q, "held", func(ctx context.Context, j *pgqueue.Job) error {
		tx, err := j.Tx(ctx)
		if err != nil {
			return err
		}
		if string(j.Payload) == "ignores" {
			tx.Exec(ctx, `SELECT 1/0`) // the error is dropped
		}
		return nil
	}, pgqueue.WithTransactionHeld(), pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithBatch(3))
	run(t, w)
	eventually(t, "two jobs done, one dead", func() bool { return count(t, pool, schema, -1) == 1 && count(t, pool, schema, 2) == 1 })
	var payload, lastErr string
	if err := pool.QueryRow(ctx, `SELECT convert_from(payload, 'UTF8'), last_error FROM `+schema+`.backi_jobs`).Scan(&payload, &lastErr); err != nil {
		t.Fatal(err)
	}
	if payload != "ignores" || !strings.Contains(lastErr, "failed") {
		t.Fatalf("dead job %q with last error %q, want the one that ignored its failed statement", payload, lastErr)
	}
}

// Job.Complete of a held job in a transaction other than Job.Tx's returns
// an error at once: that transaction would wait for the job's row lock,
// which the worker holds until the handler returns.
func TestTransactionHeldCompleteInAnotherTransaction(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "held", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	completed := make(chan error, 1)
	w := pgqueue.Worker(q, "held", func(ctx context.Context, j *pgqueue.Job) error {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return j.Complete(ctx, tx) })
		completed <- err
		return err
	}, pgqueue.WithTransactionHeld(), pgqueue.WithJobTimeout(5*time.Second), pgqueue.WithPoll(10*time.Millisecond))
	run(t, w)
	select {
	case err := <-completed:
		if err == nil || !strings.Contains(err.Error(), "Job.Tx") {
			t.Fatalf("Complete in another transaction: %v, want an error naming Job.Tx", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Complete in another transaction waits for the job's row lock")
	}
	eventually(t, "the job dead", func() bool { return count(t, pool, schema, 2) == 1 })
}

// With the queue running as a service, an enqueue wakes an idle worker at
// once, though it polls only every 10s.
func TestNotificationsWakeIdleWorkers(t *testing.T) {
	q, pool, _ := setup(t)
	ctx := context.Background()
	started := make(chan struct{}, 10)
	w := pgqueue.Worker(q, "fast", func(ctx context.Context, j *pgqueue.Job) error {
		started <- struct{}{}
		return nil
	}, pgqueue.WithPoll(10*time.Second), pgqueue.WithWorkerOptions(backi.WithIdle(10*time.Second, 10*time.Second)))
	run(t, q, w)
	for i := range 3 {
		eventually(t, "the worker idle", func() bool { return w.Status().State == backi.StateIdle })
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "fast"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("enqueue %d did not wake the idle worker within 5s", i+1)
		}
	}
}

// stopAtClaim cancels a worker's context as its claim is sent, once armed.
type stopAtClaim struct {
	stop atomic.Pointer[context.CancelFunc]
}

func (s *stopAtClaim) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (s *stopAtClaim) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *stopAtClaim) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	for _, q := range d.Batch.QueuedQueries {
		if strings.Contains(q.SQL, "SKIP LOCKED") {
			if stop := s.stop.Swap(nil); stop != nil {
				(*stop)()
			}
		}
	}
	return ctx
}
func (s *stopAtClaim) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (s *stopAtClaim) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// A worker that stops while its claim is on the way gives the jobs it
// claimed back at once, their attempt not counted.
func TestStopDuringAClaimGivesTheJobsBack(t *testing.T) {
	_, pool, schema := setup(t)
	ctx := context.Background()
	cfg := pool.Config()
	tracer := &stopAtClaim{}
	cfg.ConnConfig.Tracer = tracer
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer traced.Close()
	q, err := pgqueue.New(traced, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	var ran atomic.Int32
	w := pgqueue.Worker(q, "s", func(context.Context, *pgqueue.Job) error {
		ran.Add(1)
		return nil
	}, pgqueue.WithWorkerOptions(backi.WithLogger(quiet)))
	runCtx, stop := context.WithCancel(ctx)
	tracer.stop.Store(&stop)
	if err := w.Run(runCtx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var pending, attempts int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 0), coalesce(sum(attempts), 0) FROM `+schema+`.backi_jobs`).Scan(&pending, &attempts); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 0 || pending != 3 || attempts != 0 {
		t.Fatalf("after a stop during the claim: %d runs, %d of 3 jobs pending, %d attempts counted; want 0, 3, 0", ran.Load(), pending, attempts)
	}
}

// The queue does not keep the workers made on it alive: a service that
// makes and drops workers does not grow.
func TestDroppedWorkersAreCollected(t *testing.T) {
	q, _, _ := setup(t)
	var collected atomic.Int32
	for range 20 {
		w := pgqueue.Worker(q, "dropped", func(context.Context, *pgqueue.Job) error { return nil })
		runtime.AddCleanup(w, func(int) { collected.Add(1) }, 0)
	}
	eventually(t, "the dropped workers collected", func() bool {
		runtime.GC()
		return collected.Load() == 20
	})
	runtime.KeepAlive(q)
}

// Queues in two schemas run in one host: their listeners' names differ.
func TestTwoSchemasInOneHost(t *testing.T) {
	a, pool, _ := setup(t)
	b, err := pgqueue.New(pool, pgqueue.WithSchema("other"), pgqueue.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() == b.Name() {
		t.Fatalf("both queues' listeners are named %q", a.Name())
	}
	stop := run(t, a, b)
	stop()
}

func TestBadOptions(t *testing.T) {
	q, _, _ := setup(t)
	h := func(context.Context, *pgqueue.Job) error { return nil }
	for _, c := range []struct {
		w    *backi.Worker
		want string
	}{
		{pgqueue.Worker(q, "x", h, pgqueue.WithBatch(0)), "Batch(0)"},
		{pgqueue.Worker(q, "x", h, pgqueue.WithLease(time.Millisecond)), "Lease(1ms)"},
		{pgqueue.Worker(q, "x", h, pgqueue.WithJobTimeout(-1)), "JobTimeout(-1ns)"},
		{pgqueue.Worker(q, "x", h, pgqueue.WithRetryBackoff(nil)), "WithRetryBackoff(nil)"},
		{pgqueue.Worker(q, "x", h, pgqueue.WithPoll(0)), "Poll(0s)"},
		{pgqueue.Worker(q, "", h), "queue name is empty"},
		{pgqueue.Worker(q, "x", nil), "handler is nil"},
		{pgqueue.Worker(nil, "x", h), "queue is nil"},
	} {
		if err := c.w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run = %v, want an error naming %s", err, c.want)
		}
	}
	if _, err := pgqueue.New(nil); err == nil {
		t.Error("New(nil): no error")
	}
}

func TestStatsAndDeadJobs(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, j := range []pgqueue.NewJob{
		{Queue: "a"}, {Queue: "a"}, {Queue: "a", RunAt: time.Now().Add(time.Hour)}, {Queue: "b", Payload: []byte("doomed"), MaxAttempts: 1},
	} {
		if _, err := q.Enqueue(ctx, pool, j); err != nil {
			t.Fatal(err)
		}
	}
	w := pgqueue.Worker(q, "b", func(context.Context, *pgqueue.Job) error { return errors.New("<b>no</b>") }, pgqueue.WithPoll(10*time.Millisecond))
	stop := run(t, w)
	eventually(t, "the job of b dead", func() bool { return count(t, pool, schema, 2) == 1 })
	stop()
	stats, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 {
		t.Fatalf("stats of %d queues: %+v", len(stats), stats)
	}
	if a := stats[0]; a.Queue != "a" || a.Due != 2 || a.Later != 1 || a.OldestDue <= 0 || a.Running != 0 || a.Dead != 0 {
		t.Fatalf("stats of a: %+v", a)
	}
	if b := stats[1]; b.Queue != "b" || b.Dead != 1 || b.Due != 0 {
		t.Fatalf("stats of b: %+v", b)
	}
	dead, err := q.Dead(ctx, "b", 10)
	if err != nil || len(dead) != 1 || string(dead[0].Payload) != "doomed" || dead[0].LastError != "<b>no</b>" || dead[0].Attempts != 1 {
		t.Fatalf("dead jobs %+v, %v", dead, err)
	}
	if err := q.Retry(ctx, dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, dead[0].ID); !errors.Is(err, pgqueue.ErrNotDead) {
		t.Fatalf("retry of a job no longer dead: %v", err)
	}
	if n := count(t, pool, schema, 0); n != 4 {
		t.Fatalf("%d pending jobs after the retry, want 4", n)
	}
	var attempts, maxAttempts int
	if err := pool.QueryRow(ctx, `SELECT attempts, max_attempts FROM `+schema+`.backi_jobs WHERE id = $1`, dead[0].ID).Scan(&attempts, &maxAttempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || maxAttempts != 2 {
		t.Fatalf("after the retry: %d attempts of %d, want 1 of 2: the count goes on, with as many attempts again", attempts, maxAttempts)
	}
	if err := q.Discard(ctx, dead[0].ID); !errors.Is(err, pgqueue.ErrNotDead) {
		t.Fatalf("discard of a pending job: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+schema+`.backi_jobs SET state = 2 WHERE id = $1`, dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := q.Discard(ctx, dead[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Dead(ctx, "b", 0); err == nil {
		t.Fatal("Dead with limit 0: no error")
	}
	keyed, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "c", UniqueKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+schema+`.backi_jobs SET state = 2 WHERE id = $1`, keyed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "c", UniqueKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, keyed.ID); !errors.Is(err, pgqueue.ErrUniqueKeyTaken) {
		t.Fatalf("retry of a dead job whose key a pending job has: %v, want ErrUniqueKeyTaken", err)
	}
}

// Dead jobs over HTTP: listed, retried in their queue only, discarded.
func TestDeadJobsOverHTTP(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	var ids [2]int64
	for i, queue := range []string{"a", "b"} {
		e, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: queue, Payload: []byte("p\xffq")})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = e.ID
	}
	if _, err := pool.Exec(ctx, `UPDATE `+schema+`.backi_jobs SET state = 2, last_error = 'boom', finished_at = now()`); err != nil {
		t.Fatal(err)
	}
	h := backihttp.QueueControl(pgqueue.ForHTTP(q), backihttp.WithControlLogger(quiet))
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := do("GET", "/queues"); code != 200 || !strings.Contains(body, `"queue":"a"`) || !strings.Contains(body, `"dead":1`) {
		t.Fatalf("GET /queues: %d %s", code, body)
	}
	if code, body := do("GET", "/queues/a/dead"); code != 200 || !strings.Contains(body, "\"payload\":\"p\ufffdq\"") || !strings.Contains(body, `"last_error":"boom"`) {
		t.Fatalf("GET dead: %d %s", code, body)
	}
	if code, _ := do("POST", fmt.Sprintf("/queues/a/dead/%d/retry", ids[1])); code != 404 {
		t.Fatalf("retry of b's job through a: %d, want 404", code)
	}
	if code, body := do("POST", fmt.Sprintf("/queues/a/dead/%d/retry", ids[0])); code != 200 {
		t.Fatalf("retry: %d %s", code, body)
	}
	if code, body := do("POST", fmt.Sprintf("/queues/b/dead/%d/discard", ids[1])); code != 200 {
		t.Fatalf("discard: %d %s", code, body)
	}
	if n, d := count(t, pool, schema, -1), count(t, pool, schema, 0); n != 1 || d != 1 {
		t.Fatalf("%d jobs, %d pending, want the retried one only", n, d)
	}
}

// KeepDone keeps done jobs, and a Cleaner deletes them once old enough.
func TestKeepDoneAndClean(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for range 5 {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "kept", UniqueKey: "same"}); err != nil {
			t.Fatal(err)
		}
	}
	w := pgqueue.Worker(q, "kept", func(context.Context, *pgqueue.Job) error { return nil }, pgqueue.WithKeepDone(), pgqueue.WithPoll(10*time.Millisecond))
	stop := run(t, w)
	eventually(t, "the job done and kept", func() bool { return count(t, pool, schema, 3) == 1 && count(t, pool, schema, -1) == 1 })
	if e, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "kept", UniqueKey: "same"}); err != nil || e.Duplicate {
		t.Fatalf("a done job's key blocks a new enqueue: %+v %v", e, err)
	}
	eventually(t, "the second job done", func() bool { return count(t, pool, schema, 3) == 2 })
	stop()
	if _, err := pool.Exec(ctx, `UPDATE `+schema+`.backi_jobs SET finished_at = now() - interval '2 hours' WHERE id = (SELECT min(id) FROM `+schema+`.backi_jobs)`); err != nil {
		t.Fatal(err)
	}
	cleaner := q.Cleaner(time.Hour, 0, backi.WithRunAtStart(), backi.WithLogger(quiet))
	stop = run(t, cleaner)
	eventually(t, "the old done job deleted", func() bool { return count(t, pool, schema, 3) == 1 })
	stop()
	if err := q.Cleaner(-time.Second, 0).Run(ctx); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("a negative keepDone: %v", err)
	}
}
