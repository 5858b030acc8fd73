package pgqueue_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// setupOn is setup on the server at url, with params added to the pool's
// connection string (pool_max_conns=1, say).
func setupOn(t *testing.T, url, params string) (*pgqueue.Queue, *pgxpool.Pool, string) {
	t.Helper()
	if params != "" {
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + params
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	schema := fmt.Sprintf("pgqueue_test_%d", rand.Uint32())
	t.Cleanup(func() {
		pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
		pool.Close()
	})
	q, err := pgqueue.New(pool, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q, pool, schema
}

// newPool is a pool of the test's own on url, closed at the test's end.
func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// enqueueN enqueues n jobs to queue, their payloads 0 to n-1.
func enqueueN(t *testing.T, q *pgqueue.Queue, db pgqueue.DB, queue string, n int) {
	t.Helper()
	jobs := make([]pgqueue.NewJob, n)
	for i := range jobs {
		jobs[i] = pgqueue.NewJob{Queue: queue, Payload: []byte(fmt.Sprint(i))}
	}
	if _, err := q.EnqueueMany(context.Background(), db, jobs); err != nil {
		t.Fatal(err)
	}
}

// within waits up to d for cond.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A job that outlasts its lease on a pool of one connection: its heartbeat
// waits for a connection while the job runs, and must not race with the
// start of the batch (run with -race).
func TestHeartbeatOnAPoolOfOne(t *testing.T) {
	q, pool, schema := setupOn(t, pgtest.URL(t), "pool_max_conns=1")
	if _, err := q.Enqueue(context.Background(), pool, pgqueue.NewJob{Queue: "long"}); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	w := pgqueue.Worker(q, "long", func(ctx context.Context, j *pgqueue.Job) error {
		runs.Add(1)
		time.Sleep(1500 * time.Millisecond)
		return nil
	}, pgqueue.WithLease(time.Second), pgqueue.WithPoll(20*time.Millisecond))
	run(t, w)
	watch := newPool(t, pgtest.URL(t))
	within(t, 10*time.Second, "the job done", func() bool { return count(t, watch, schema, -1) == 0 })
	if runs.Load() != 1 {
		t.Fatalf("%d runs", runs.Load())
	}
}

// A handler that writes with the queue's pool must not hang the worker when
// its loops are as many as the pool's connections (pgxpool's default is 4,
// or the number of CPUs): each loop held a connection while its handlers ran.
func TestHandlersMayUseThePool(t *testing.T) {
	q, pool, schema := setup(t)
	loops := int(pool.Config().MaxConns)
	enqueueN(t, q, pool, "p", 3*loops)
	w := pgqueue.Worker(q, "p", func(ctx context.Context, j *pgqueue.Job) error {
		_, err := pool.Exec(ctx, `SELECT 1`)
		return err
	}, pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithBatch(1), pgqueue.WithWorkerOptions(backi.WithConcurrency(loops)))
	run(t, w)
	watch := newPool(t, pgtest.URL(t)) // the queue's pool may be exhausted
	within(t, 5*time.Second, "the queue drained", func() bool { return count(t, watch, schema, -1) == 0 })
}

// A job that outlasts its lease keeps it while it runs, also when the
// worker's pool is busy: another replica must not run it at the same time.
func TestABusyPoolKeepsTheLease(t *testing.T) {
	url := pgtest.URL(t)
	q, pool, schema := setupOn(t, url, "pool_max_conns=1")
	other := newPool(t, url)
	q2, err := pgqueue.New(other, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(context.Background(), pool, pgqueue.NewJob{Queue: "long"}); err != nil {
		t.Fatal(err)
	}
	var running, runs, overlaps atomic.Int32
	handler := func(ctx context.Context, j *pgqueue.Job) error {
		runs.Add(1)
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer running.Add(-1)
		time.Sleep(3 * time.Second)
		return nil
	}
	a := pgqueue.Worker(q, "long", handler, pgqueue.WithLease(time.Second), pgqueue.WithPoll(20*time.Millisecond))
	stopA := run(t, a)
	within(t, 5*time.Second, "the job started", func() bool { return runs.Load() == 1 })
	b := pgqueue.Worker(q2, "long", handler, pgqueue.WithLease(time.Second), pgqueue.WithPoll(20*time.Millisecond))
	stopB := run(t, b)
	within(t, 10*time.Second, "the job done", func() bool { return count(t, other, schema, -1) == 0 })
	stopA()
	stopB()
	if runs.Load() != 1 || overlaps.Load() != 0 {
		t.Fatalf("%d runs, %d at once with another: the running job lost its lease", runs.Load(), overlaps.Load())
	}
}

type unwrapPanics struct{}

func (unwrapPanics) Error() string { return "its Unwrap panics" }
func (unwrapPanics) Unwrap() error { panic("Unwrap") }

type errorPanicsWithItself struct{}

func (e *errorPanicsWithItself) Error() string { panic(e) }

type unwrapsItself struct{}

func (e *unwrapsItself) Error() string { return "it unwraps to itself" }
func (e *unwrapsItself) Unwrap() error { return e }

// A handler's error whose methods panic or never end fails its job only:
// the outcomes of the batch's other jobs are recorded, and the worker does
// not spin.
func TestHostileHandlerErrors(t *testing.T) {
	url := pgtest.URL(t)
	for _, c := range []struct {
		name string
		bad  func() error
	}{
		{"UnwrapPanics", func() error { return unwrapPanics{} }},
		{"ErrorPanicsWithItself", func() error { return &errorPanicsWithItself{} }},
		{"PanicWithAnErrorWhoseUnwrapPanics", func() error { panic(unwrapPanics{}) }},
		{"CancelOfAnErrorWhoseErrorPanics", func() error { return pgqueue.Cancel(&errorPanicsWithItself{}) }},
		{"UnwrapsToItself", func() error { return &unwrapsItself{} }},
		{"JoinedWithItself", func() error { return errors.Join(&unwrapsItself{}, errors.New("x")) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			// Not setup: should the worker spin, holding a connection,
			// closing the pool would hang the test.
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			schema := fmt.Sprintf("pgqueue_test_%d", rand.Uint32())
			q, err := pgqueue.New(pool, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			watch := newPool(t, url)
			defer watch.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`)
			for i := range 5 {
				if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "e", Payload: []byte(fmt.Sprint(i)), MaxAttempts: 1}); err != nil {
					t.Fatal(err)
				}
			}
			w := pgqueue.Worker(q, "e", func(ctx context.Context, j *pgqueue.Job) error {
				if string(j.Payload) == "2" {
					return c.bad()
				}
				return nil
			}, pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithLease(time.Hour), pgqueue.WithWorkerOptions(backi.WithLogger(quiet)))
			wctx, cancel := context.WithCancel(ctx)
			stopped := make(chan error, 1)
			go func() { stopped <- w.Run(wctx) }()
			deadline := time.Now().Add(3 * time.Second)
			for count(t, watch, schema, -1) != 1 || count(t, watch, schema, 2) != 1 {
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("the good jobs not done and the bad one not dead within 3s: %d jobs, %d dead; worker: %+v",
						count(t, watch, schema, -1), count(t, watch, schema, 2), w.Status())
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			pool.Close()
			if s := w.Status(); s.Failures != 0 {
				t.Fatalf("the bad job failed the worker: %v", s.LastError)
			}
			var text string
			if err := watch.QueryRow(ctx, `SELECT last_error FROM `+schema+`.backi_jobs`).Scan(&text); err != nil || text == "" {
				t.Fatalf("the dead job's error %q, %v", text, err)
			}
			t.Logf("last error: %.80q", text)
		})
	}
}

// A run that hung past its lease ends after the job was rescued, retried
// by an operator and taken by another run: its late outcome must not touch
// the new run's job, which would otherwise end dead under a successful run.
func TestLateOutcomeAfterRetry(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	e, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "t", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	var running, runs atomic.Int32
	firstIn, firstOut, secondIn := make(chan struct{}), make(chan struct{}), make(chan struct{})
	w := pgqueue.Worker(q, "t", func(ctx context.Context, j *pgqueue.Job) error {
		n := runs.Add(1)
		running.Add(1)
		defer running.Add(-1)
		switch n {
		case 1:
			close(firstIn)
			<-firstOut
			return errors.New("the hung run fails at last")
		case 2:
			close(secondIn)
			time.Sleep(500 * time.Millisecond)
		}
		return nil
	}, pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithWorkerOptions(backi.WithConcurrency(2)))
	run(t, w)
	<-firstIn
	// The first run's process hangs past its lease, so that the job is
	// rescued and ends dead, its one attempt used (as rescueSQL does), and
	// an operator retries it.
	if _, err := pool.Exec(ctx, `UPDATE `+schema+`.backi_jobs SET state = 2, lease_until = NULL, finished_at = now() WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	<-secondIn
	close(firstOut) // the hung run ends while the second runs
	within(t, 5*time.Second, "the second run done", func() bool { return running.Load() == 0 && runs.Load() == 2 })
	time.Sleep(100 * time.Millisecond)
	var state int
	if err := pool.QueryRow(ctx, `SELECT state FROM `+schema+`.backi_jobs`).Scan(&state); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("the job is left in state %d (%v) after its retried run succeeded", state, err)
	}
	if runs.Load() != 2 {
		t.Fatalf("%d runs, want the hung one and the retried one", runs.Load())
	}
}

// Migrate needs no privilege beyond those of the schema: a role that owns
// the schema, without CREATE on the database, can run it.
func TestMigrateWithTheSchemasPrivilegesOnly(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	admin := newPool(t, url)
	role := fmt.Sprintf("pgqueue_test_role_%d", rand.Uint32())
	schema := role + "_schema"
	if _, err := admin.Exec(ctx, `CREATE ROLE `+role+` LOGIN; CREATE SCHEMA `+schema+` AUTHORIZATION `+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE; DROP ROLE `+role); err != nil {
			t.Error(err)
		}
	})
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	q, err := pgqueue.New(pool, pgqueue.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "m"}); err != nil {
		t.Fatal(err)
	}
}

// Enqueue and EnqueueMany take the same jobs: a MaxAttempts beyond the
// column's range is refused by both, naming the field.
func TestEnqueueHugeMaxAttempts(t *testing.T) {
	q, pool, _ := setup(t)
	ctx := context.Background()
	job := pgqueue.NewJob{Queue: "m", MaxAttempts: math.MaxInt32 + 1}
	if _, err := q.EnqueueMany(ctx, pool, []pgqueue.NewJob{job}); err == nil || !strings.Contains(err.Error(), "MaxAttempts") {
		t.Fatalf("EnqueueMany: %v, want an error naming MaxAttempts", err)
	}
	if _, err := q.Enqueue(ctx, pool, job); err == nil || !strings.Contains(err.Error(), "MaxAttempts") {
		t.Fatalf("Enqueue: %v, want an error naming MaxAttempts", err)
	}
}

// On a TransactionHeld worker, Job.Complete with a transaction other than
// the job's (Job.Tx) waits for the row lock that the job's own transaction
// holds, for as long as the handler's context lasts: it must fail at once.
func TestHeldCompleteWithAnotherTransaction(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "h", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		err  error
		took time.Duration
	}
	res := make(chan result, 1)
	w := pgqueue.Worker(q, "h", func(ctx context.Context, j *pgqueue.Job) error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		began := time.Now()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return j.Complete(ctx, tx) })
		res <- result{err, time.Since(began)}
		return err
	}, pgqueue.WithTransactionHeld(), pgqueue.WithPoll(10*time.Millisecond))
	run(t, w)
	r := <-res
	if r.err == nil || r.took > time.Second {
		t.Fatalf("Complete with another transaction: %v after %v", r.err, r.took)
	}
	t.Logf("Complete: %v", r.err)
	within(t, 5*time.Second, "the job dead", func() bool { return count(t, pool, schema, 2) == 1 })
}

// On a TransactionHeld worker, Job.Complete with the job's own transaction
// completes it.
func TestHeldCompleteWithTheJobsTransaction(t *testing.T) {
	q, pool, schema := setup(t)
	enqueueN(t, q, pool, "h", 5)
	w := pgqueue.Worker(q, "h", func(ctx context.Context, j *pgqueue.Job) error {
		tx, err := j.Tx(ctx)
		if err != nil {
			return err
		}
		if err := j.Complete(ctx, tx); err != nil {
			return err
		}
		if string(j.Payload) == "3" && j.Attempt == 1 {
			return errors.New("rolls the completion back")
		}
		return nil
	}, pgqueue.WithTransactionHeld(), pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithRetryBackoff(backi.ConstantBackoff(10*time.Millisecond)))
	run(t, w)
	within(t, 5*time.Second, "every job done", func() bool { return count(t, pool, schema, -1) == 0 })
}

// A job whose run outlives the worker's iteration timeout
// (WorkerOptions(backi.WithTimeout(d))) fails: its attempts count, and it
// ends dead, instead of being put back as if the worker had stopped, again
// and again without end.
func TestIterationDeadlineCountsTheAttempt(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "slow", MaxAttempts: 2}); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	w := pgqueue.Worker(q, "slow", func(ctx context.Context, j *pgqueue.Job) error {
		runs.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}, pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithRetryBackoff(backi.ConstantBackoff(10*time.Millisecond)),
		pgqueue.WithWorkerOptions(backi.WithTimeout(100*time.Millisecond), backi.WithBackoff(backi.ConstantBackoff(10*time.Millisecond))))
	run(t, w)
	within(t, 3*time.Second, "the job dead", func() bool { return count(t, pool, schema, 2) == 1 })
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs of a job of 2 attempts", n)
	}
}

// EnqueueMany of 10,000 jobs whose unique keys repeat within the batch and
// match a pending job's: one statement adds each key once.
func TestEnqueueManyWithDuplicateKeysInTheBatch(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "u", UniqueKey: "k8"}); err != nil {
		t.Fatal(err)
	}
	jobs := make([]pgqueue.NewJob, 10000)
	for i := range jobs {
		jobs[i] = pgqueue.NewJob{Queue: "u", Payload: []byte(fmt.Sprint(i))}
		if i%2 == 0 {
			jobs[i].UniqueKey = fmt.Sprintf("k%d", i%1000) // 500 keys, k8 among them
		}
	}
	added, err := q.EnqueueMany(ctx, pool, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if added != 5000+499 {
		t.Fatalf("added %d, want 5,000 without a key and 499 new keys", added)
	}
	if n := count(t, pool, schema, -1); n != 1+added {
		t.Fatalf("%d jobs in the table", n)
	}
}

// Enqueues of one unique key race in transactions, half of which roll
// back: exactly one job is left.
func TestUniqueKeyRace(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var added atomic.Int32
	rollback := errors.New("rollback")
	for i := range 20 {
		wg.Go(func() {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				e, err := q.Enqueue(ctx, tx, pgqueue.NewJob{Queue: "u", UniqueKey: "same"})
				if err != nil {
					return err
				}
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				if i%2 == 0 {
					return rollback
				}
				if !e.Duplicate {
					added.Add(1)
				}
				return nil
			})
			if err != nil && err != rollback {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := count(t, pool, schema, -1); n != 1 || added.Load() != 1 {
		t.Fatalf("%d jobs, %d enqueues not duplicates", n, added.Load())
	}
}

// Snooze with a negative wait runs the job again at once; with the longest
// one it waits, and is counted as later.
func TestSnoozeExtremes(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, p := range []string{"negative", "longest"} {
		if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "z", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	var negative atomic.Int32
	w := pgqueue.Worker(q, "z", func(ctx context.Context, j *pgqueue.Job) error {
		if string(j.Payload) == "negative" {
			if negative.Add(1) < 3 {
				return pgqueue.Snooze(-time.Hour)
			}
			return nil
		}
		return pgqueue.Snooze(time.Duration(math.MaxInt64))
	}, pgqueue.WithPoll(10*time.Millisecond))
	stop := run(t, w)
	within(t, 5*time.Second, "the negative snooze done", func() bool { return count(t, pool, schema, -1) == 1 && negative.Load() == 3 })
	stop()
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Later != 1 || st[0].Running != 0 || st[0].Retrying != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s := w.Status(); s.Failures != 0 {
		t.Fatalf("the worker failed: %v", s.LastError)
	}
}

// A schema and a queue named with quotes, spaces, SQL and other scripts;
// five replicas migrate at once.
func TestStrangeNames(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, pgtest.URL(t))
	schema := fmt.Sprintf(`pgqueue_test "we'ird" Ü-%d`, rand.Uint32())
	t.Cleanup(func() { pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	q, err := pgqueue.New(pool, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() { errs[i] = q.Migrate(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	queue := `o'rd"ers; DROP TABLE x; -- 日本語 🚀`
	var ran atomic.Int32
	w := pgqueue.Worker(q, queue, func(ctx context.Context, j *pgqueue.Job) error {
		if j.Queue != queue || len(j.Payload) != 0 {
			return fmt.Errorf("job of %q with %q", j.Queue, j.Payload)
		}
		ran.Add(1)
		return nil
	}, pgqueue.WithPoll(10*time.Second))
	run(t, q, w)
	time.Sleep(300 * time.Millisecond) // the listener listens
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: queue}); err != nil {
		t.Fatal(err)
	}
	within(t, 3*time.Second, "the job woken and run", func() bool { return ran.Load() == 1 })
	within(t, 3*time.Second, "the job deleted", func() bool {
		st, err := q.Stats(ctx)
		return err == nil && len(st) == 0
	})
}

// A worker stopped mid-batch leaves nothing leased and counts no attempt
// for the jobs it did not finish.
func TestStopMidBatchLeavesNothingLeased(t *testing.T) {
	q, pool, schema := setup(t)
	enqueueN(t, q, pool, "s", 100)
	started := make(chan struct{}, 100)
	w := pgqueue.Worker(q, "s", func(ctx context.Context, j *pgqueue.Job) error {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
			return nil
		}
	}, pgqueue.WithBatch(20), pgqueue.WithWorkerOptions(backi.WithConcurrency(2)))
	stop := run(t, w)
	for range 5 {
		<-started
	}
	stop()
	if n := count(t, pool, schema, 1); n != 0 {
		t.Fatalf("%d jobs left leased after the stop", n)
	}
	var attempts int
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(max(attempts), 0) FROM `+schema+`.backi_jobs`).Scan(&attempts); err != nil || attempts != 0 {
		t.Fatalf("attempts %d counted for jobs put back at the stop (%v)", attempts, err)
	}
}

// A handler that completes its job in its own transaction and then returns
// an error: the job is done, and not run again.
func TestCompleteThenFail(t *testing.T) {
	q, pool, schema := setup(t)
	enqueueN(t, q, pool, "c", 10)
	var runs atomic.Int32
	w := pgqueue.Worker(q, "c", func(ctx context.Context, j *pgqueue.Job) error {
		runs.Add(1)
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return j.Complete(ctx, tx) }); err != nil {
			return err
		}
		return errors.New("failed after completing")
	}, pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithRetryBackoff(backi.ConstantBackoff(10*time.Millisecond)))
	run(t, w)
	within(t, 5*time.Second, "every job done", func() bool { return count(t, pool, schema, -1) == 0 })
	time.Sleep(100 * time.Millisecond)
	if n := runs.Load(); n != 10 {
		t.Fatalf("%d runs of 10 jobs", n)
	}
}

// Job.Complete after the run's lease was lost and another run took the job
// says so, and deletes nothing.
func TestCompleteAfterTheLeaseWasLost(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "l"}); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	first := make(chan error, 1)
	secondIn, secondOut := make(chan struct{}), make(chan struct{})
	w := pgqueue.Worker(q, "l", func(ctx context.Context, j *pgqueue.Job) error {
		if runs.Add(1) == 2 {
			close(secondIn)
			<-secondOut
			return nil
		}
		// This run's lease is lost, as the rescue does it.
		if _, err := pool.Exec(ctx, `UPDATE `+schema+`.backi_jobs SET state = 0, lease_until = NULL WHERE id = $1`, j.ID); err != nil {
			return err
		}
		<-secondIn
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return j.Complete(ctx, tx) })
		first <- err
		close(secondOut)
		return err
	}, pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithWorkerOptions(backi.WithConcurrency(2)))
	run(t, w)
	if err := <-first; !errors.Is(err, pgqueue.ErrLeaseLost) {
		t.Fatalf("Complete after the lease was lost: %v", err)
	}
	within(t, 5*time.Second, "the second run done", func() bool { return count(t, pool, schema, -1) == 0 })
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs", n)
	}
}

// An enqueue of a job due now (RunAt: time.Now()) in a transaction that
// began earlier notifies the listeners: the job is due when it commits.
// now() is the transaction's start, before the job's RunAt.
func TestEnqueueDueNowInAnOlderTransactionNotifies(t *testing.T) {
	q, pool, _ := setup(t)
	ctx := context.Background()
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, `LISTEN backi_jobs`); err != nil {
		t.Fatal(err)
	}
	defer listener.Exec(ctx, `UNLISTEN *`)
	for _, many := range []bool{false, true} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT 1`); err != nil { // the business change
				return err
			}
			time.Sleep(20 * time.Millisecond)
			job := pgqueue.NewJob{Queue: fmt.Sprint("many=", many), RunAt: time.Now()}
			if many {
				_, err := q.EnqueueMany(ctx, tx, []pgqueue.NewJob{job})
				return err
			}
			_, err := q.Enqueue(ctx, tx, job)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		n, err := listener.Conn().WaitForNotification(wctx)
		cancel()
		if err != nil || n.Payload != fmt.Sprint("many=", many) {
			t.Fatalf("many=%v: no notification of the job due now: %v", many, err)
		}
	}
}

// A job due centuries ago (a RunAt from a bad clock or a default date):
// Stats' OldestDue does not overflow into a negative duration.
func TestStatsOfAJobDueCenturiesAgo(t *testing.T) {
	q, pool, _ := setup(t)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, pool, pgqueue.NewJob{Queue: "old", RunAt: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Due != 1 || st[0].OldestDue < 100*365*24*time.Hour {
		t.Fatalf("stats %+v", st)
	}
}

// A handler that completes its job early in its own transaction and keeps
// that transaction open past the lease holds a lock on its job's row. The
// heartbeat of its batch must not wait for that lock: the leases of the
// batch's other jobs would run out, other workers would take them, and this
// worker would run them too, at the same time.
func TestALockedJobDoesNotStopTheHeartbeat(t *testing.T) {
	q, pool, schema := setup(t)
	ctx := context.Background()
	for _, j := range []pgqueue.NewJob{{Queue: "b", Payload: []byte("slow tx"), Priority: 1}, {Queue: "b", Payload: []byte("next")}} {
		if _, err := q.Enqueue(ctx, pool, j); err != nil {
			t.Fatal(err)
		}
	}
	var running, overlaps, nexts atomic.Int32
	w := pgqueue.Worker(q, "b", func(ctx context.Context, j *pgqueue.Job) error {
		if string(j.Payload) == "slow tx" {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if err := j.Complete(ctx, tx); err != nil {
					return err
				}
				time.Sleep(2500 * time.Millisecond) // the rest of the work, in tx
				return nil
			})
		}
		nexts.Add(1)
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer running.Add(-1)
		time.Sleep(time.Second)
		return nil
	}, pgqueue.WithLease(time.Second), pgqueue.WithBatch(2), pgqueue.WithPoll(10*time.Millisecond), pgqueue.WithWorkerOptions(backi.WithConcurrency(2)))
	run(t, w)
	within(t, 10*time.Second, "both jobs done", func() bool { return count(t, pool, schema, -1) == 0 && running.Load() == 0 })
	time.Sleep(200 * time.Millisecond)
	if nexts.Load() != 1 || overlaps.Load() != 0 {
		t.Fatalf("the job after the slow one ran %d times, %d at once with another run", nexts.Load(), overlaps.Load())
	}
}
