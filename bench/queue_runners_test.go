package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// A queueRunner is one job queue under test, on tables of its own in a
// fresh schema of the test database, which close drops.
type queueRunner interface {
	// fill enqueues n jobs numbered 0 to n-1, in large batches.
	fill(ctx context.Context, n int) error
	// start consumes the queue, calling handle with the number of each job
	// it starts; stop stops it and returns once every outcome is recorded.
	start(ctx context.Context, handle func(n int)) (stop func() error, err error)
	// enqueueTx enqueues job n in a transaction of its own.
	enqueueTx(ctx context.Context, n int) error
	// enqueue enqueues job n without a transaction of the caller's.
	enqueue(ctx context.Context, n int) error
	// enqueueMany enqueues the jobs numbered from n to n+count-1 at once.
	enqueueMany(ctx context.Context, n, count int) error
	// left counts the jobs not done.
	left(ctx context.Context) (int, error)
	// analyze collects the statistics of the job table, as autovacuum does.
	analyze(ctx context.Context) error
	close()
}

// queueRunners are the runners of the queue benchmarks, by name.
var queueRunners = []struct {
	name string
	new  func(tb testing.TB) queueRunner
}{
	{"backi", func(tb testing.TB) queueRunner { return newBackiRunner(tb) }},
	{"river-default", func(tb testing.TB) queueRunner { return newRiverRunner(tb, riverDefault) }},
	{"river-tuned", func(tb testing.TB) queueRunner { return newRiverRunner(tb, riverTuned) }},
}

// The backi worker's options in every queue benchmark (see
// BenchmarkQueueBurnDown for why).
const (
	backiLanes = 4
	backiBatch = 500
)

// The River clients' settings: River's defaults with 100 workers, and the
// settings of River's own benchmark (cmd/river/riverbench).
var (
	riverDefault = riverSettings{maxWorkers: 100}
	riverTuned   = riverSettings{maxWorkers: 2000, fetchCooldown: 2 * time.Millisecond, fetchPoll: 20 * time.Millisecond}
)

// poolConns is the size of every runner's connection pool: enough for 2,000
// River workers' fetches and completions, and for backi's lanes, its
// listener and its lease extensions.
const poolConns = 20

// queuePool returns a pool on the test database, closed at the latest at
// the end of the benchmark, and a fresh schema name.
func queuePool(tb testing.TB, prefix string) (*pgxpool.Pool, string) {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = poolConns
	cfg.ConnConfig.RuntimeParams["application_name"] = "backi-bench"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool, fmt.Sprintf("qbench_%s_%d", prefix, rand.Uint32())
}

func dropSchema(pool *pgxpool.Pool, schema string) {
	pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	pool.Close()
}

// payload is the JSON of job n, as both runners store it.
func payload(n int) []byte { return append(strconv.AppendInt([]byte(`{"n":`), int64(n), 10), '}') }

// benchArgs is a River job's arguments: the same JSON as payload.
type benchArgs struct {
	N int `json:"n"`
}

func (benchArgs) Kind() string { return "bench" }

// backiRunner is a pgqueue.Queue with one Worker of backiLanes loops
// claiming backiBatch jobs at a time, and the Queue run as a service to wake
// it.
type backiRunner struct {
	pool   *pgxpool.Pool
	schema string
	q      *pgqueue.Queue
}

const backiQueue = "bench"

func newBackiRunner(tb testing.TB) *backiRunner {
	tb.Helper()
	pool, schema := queuePool(tb, "backi")
	q, err := pgqueue.New(pool, pgqueue.WithSchema(schema), pgqueue.WithLogger(quiet))
	if err != nil {
		tb.Fatal(err)
	}
	if err := q.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return &backiRunner{pool: pool, schema: schema, q: q}
}

func (r *backiRunner) close() { dropSchema(r.pool, r.schema) }

func (r *backiRunner) fill(ctx context.Context, n int) error {
	const batch = 5000
	for i := 0; i < n; i += batch {
		if err := r.enqueueMany(ctx, i, min(batch, n-i)); err != nil {
			return err
		}
	}
	return nil
}

func (r *backiRunner) start(ctx context.Context, handle func(int)) (func() error, error) {
	w := pgqueue.Worker(r.q, backiQueue, func(_ context.Context, job *pgqueue.Job) error {
		var a benchArgs
		if err := json.Unmarshal(job.Payload, &a); err != nil {
			return err
		}
		handle(a.N)
		return nil
	}, pgqueue.WithBatch(backiBatch), pgqueue.WithWorkerOptions(backi.WithConcurrency(backiLanes), backi.WithLogger(quiet)))
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
	h.Add(r.q, w)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}, nil
}

func (r *backiRunner) enqueueTx(ctx context.Context, n int) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		_, err := r.q.Enqueue(ctx, tx, pgqueue.NewJob{Queue: backiQueue, Payload: payload(n)})
		return err
	})
}

func (r *backiRunner) enqueue(ctx context.Context, n int) error {
	_, err := r.q.Enqueue(ctx, r.pool, pgqueue.NewJob{Queue: backiQueue, Payload: payload(n)})
	return err
}

func (r *backiRunner) enqueueMany(ctx context.Context, n, count int) error {
	jobs := make([]pgqueue.NewJob, count)
	for i := range jobs {
		jobs[i] = pgqueue.NewJob{Queue: backiQueue, Payload: payload(n + i)}
	}
	added, err := r.q.EnqueueMany(ctx, r.pool, jobs)
	if err == nil && added != count {
		err = fmt.Errorf("enqueued %d of %d jobs", added, count)
	}
	return err
}

func (r *backiRunner) analyze(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{r.schema, "backi_jobs"}.Sanitize())
	return err
}

func (r *backiRunner) left(ctx context.Context) (n int, err error) {
	err = r.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{r.schema, "backi_jobs"}.Sanitize()).Scan(&n)
	return n, err
}

// riverSettings are a River client's: zero fetch settings are River's
// defaults.
type riverSettings struct {
	maxWorkers               int
	fetchCooldown, fetchPoll time.Duration
}

// riverRunner is a River client on the pgx driver, with the settings s; its
// inserts go through an insert-only client.
type riverRunner struct {
	pool   *pgxpool.Pool
	schema string
	s      riverSettings
	driver *riverpgxv5.Driver
	insert *river.Client[pgx.Tx]
}

func newRiverRunner(tb testing.TB, s riverSettings) *riverRunner {
	tb.Helper()
	ctx := context.Background()
	pool, schema := queuePool(tb, "river")
	if _, err := pool.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatal(err)
	}
	r := &riverRunner{pool: pool, schema: schema, s: s, driver: riverpgxv5.New(pool)}
	m, err := rivermigrate.New(r.driver, &rivermigrate.Config{Schema: schema, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		tb.Fatal(err)
	}
	if r.insert, err = river.NewClient(r.driver, &river.Config{Schema: schema, Logger: quiet}); err != nil {
		tb.Fatal(err)
	}
	return r
}

func (r *riverRunner) close() { dropSchema(r.pool, r.schema) }

func (r *riverRunner) fill(ctx context.Context, n int) error {
	const batch = 5000
	for i := 0; i < n; i += batch {
		if _, err := r.insert.InsertManyFast(ctx, manyArgs(i, min(batch, n-i))); err != nil {
			return err
		}
	}
	return nil
}

func manyArgs(n, count int) []river.InsertManyParams {
	params := make([]river.InsertManyParams, count)
	for i := range params {
		params[i].Args = benchArgs{N: n + i}
	}
	return params
}

func (r *riverRunner) start(ctx context.Context, handle func(int)) (func() error, error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(_ context.Context, job *river.Job[benchArgs]) error {
		handle(job.Args.N)
		return nil
	}))
	c, err := river.NewClient(r.driver, &river.Config{
		Schema:            r.schema,
		Logger:            quiet,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: r.s.maxWorkers}},
		Workers:           workers,
		FetchCooldown:     r.s.fetchCooldown,
		FetchPollInterval: r.s.fetchPoll,
	})
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return c.Stop(ctx)
	}, nil
}

func (r *riverRunner) enqueueTx(ctx context.Context, n int) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		_, err := r.insert.InsertTx(ctx, tx, benchArgs{N: n}, nil)
		return err
	})
}

func (r *riverRunner) enqueue(ctx context.Context, n int) error {
	_, err := r.insert.Insert(ctx, benchArgs{N: n}, nil)
	return err
}

func (r *riverRunner) enqueueMany(ctx context.Context, n, count int) error {
	_, err := r.insert.InsertMany(ctx, manyArgs(n, count))
	return err
}

// enqueueManyFast is enqueueMany with River's InsertManyFast (COPY FROM).
func (r *riverRunner) enqueueManyFast(ctx context.Context, n, count int) error {
	_, err := r.insert.InsertManyFast(ctx, manyArgs(n, count))
	return err
}

func (r *riverRunner) analyze(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{r.schema, "river_job"}.Sanitize())
	return err
}

func (r *riverRunner) left(ctx context.Context) (n int, err error) {
	err = r.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{r.schema, "river_job"}.Sanitize()+` WHERE state <> 'completed'`).Scan(&n)
	return n, err
}

// A mark is a moment, with the CPU time that this process and the local
// PostgreSQL server had used by then.
type mark struct {
	wall    time.Time
	cpu, pg time.Duration
	pgOK    bool
}

func markNow() mark {
	pg, ok := serverCPU()
	return mark{wall: time.Now(), cpu: cpuTime(), pg: pg, pgOK: ok}
}

// tally adds up the wall and CPU times of measured windows, and the jobs
// they saw.
type tally struct {
	jobs         int
	wall         time.Duration
	cpu, pg      time.Duration
	pgUnmeasured bool
}

// add adds the window from since to now, which saw jobs jobs.
func (t *tally) add(since mark, jobs int) {
	now := markNow()
	t.jobs += jobs
	t.wall += now.wall.Sub(since.wall)
	t.cpu += now.cpu - since.cpu
	t.pg += now.pg - since.pg
	t.pgUnmeasured = t.pgUnmeasured || !since.pgOK || !now.pgOK
}

// report reports the CPU per 1,000 jobs of the process (cpu-ms/1kjobs) and
// of the server (pgcpu-ms/1kjobs), and, if rate, the jobs per second.
func (t *tally) report(b *testing.B, rate bool) {
	if t.jobs == 0 {
		b.Fatal("no job measured")
	}
	per1k := func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(t.jobs) }
	if rate {
		b.ReportMetric(float64(t.jobs)/t.wall.Seconds(), "jobs/s")
	}
	b.ReportMetric(per1k(t.cpu), "cpu-ms/1kjobs")
	if !t.pgUnmeasured {
		b.ReportMetric(per1k(t.pg), "pgcpu-ms/1kjobs")
	}
}

// serverCPU returns the CPU time used so far by the PostgreSQL server on
// this machine: the processes named postgres, and the children that the
// postmaster has reaped (backends and autovacuum workers that ended). It
// counts the whole server, other databases' sessions included, and reports
// false when the test server is not on this machine or /proc shows no
// postgres process.
func serverCPU() (time.Duration, bool) {
	if !testServerIsLocal() {
		return 0, false
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	type proc struct {
		ppid  int
		ticks int64 // own user and system time
		child int64 // reaped children's
	}
	procs := map[int]proc{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime cutime cstime: fields 14-17.
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
		procs[pid] = proc{ppid: int(n(1)), ticks: n(11) + n(12), child: n(13) + n(14)}
	}
	var ticks int64
	for _, p := range procs {
		ticks += p.ticks
		if _, ok := procs[p.ppid]; !ok { // the postmaster
			ticks += p.child
		}
	}
	const clockTicks = 100 // USER_HZ, the unit of /proc/*/stat times on Linux
	return time.Duration(ticks) * time.Second / clockTicks, len(procs) > 0
}

// testServerIsLocal says whether the test server listens on this machine.
func testServerIsLocal() bool {
	u := os.Getenv("BACKI_PG_URL")
	if u == "" {
		u = pgtest.DefaultURL
	}
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	switch p.Hostname() {
	case "127.0.0.1", "localhost", "::1", "":
		return true
	}
	return false
}

// envInt reads a positive integer from the environment variable name, or
// returns def.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: need a positive integer", name, v)
	}
	return n
}
