package pgqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/safe"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Handler runs one job. Its error fails the job, which runs again after the
// worker's retry backoff (see WithRetryBackoff) until it has used its attempts, and is
// then dead; Snooze and Cancel say otherwise. A panic fails the job too. ctx
// ends when the worker stops (the job then runs again later, its attempt not
// counted) or at the job's timeout (see WithJobTimeout) or the iteration's
// (backi.WithTimeout), which fail the run.
type Handler func(ctx context.Context, job *Job) error

// Defaults of the worker options.
const (
	DefaultBatch = 100
	DefaultLease = 30 * time.Second
	DefaultPoll  = time.Second
)

// A WorkerOption configures Worker.
type WorkerOption func(*consumer) error

// WithBatch sets how many jobs one claim takes at most: 1 to 10,000,
// DefaultBatch by default. The jobs of a batch run one after the other, on
// one of the worker's loops; run more at once with
// WorkerOptions(backi.WithConcurrency(n)).
func WithBatch(n int) WorkerOption {
	return func(c *consumer) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("WithBatch(%d): need 1 to 10000", n)
		}
		c.batch = n
		return nil
	}
}

// WithLease sets how long a claimed job is this worker's before another may take
// it (its visibility timeout): at least a second, DefaultLease by default.
// While the jobs of a batch run, the worker extends their lease every third
// of it, so that only a stopped or hung process loses its jobs, which the
// other workers then take again; it starts no job of a batch whose lease
// may have run out meanwhile, by its own clock (after a pause of the
// process, say). Not for WithTransactionHeld workers.
func WithLease(d time.Duration) WorkerOption {
	return func(c *consumer) error {
		if d < time.Second {
			return fmt.Errorf("WithLease(%v): need at least 1s", d)
		}
		c.lease = d
		return nil
	}
}

// WithJobTimeout bounds each run of a job: its context ends after d, and the
// run fails if it does not return nil. d must be positive; by default a run
// is not bounded.
func WithJobTimeout(d time.Duration) WorkerOption {
	return func(c *consumer) error {
		if d <= 0 {
			return fmt.Errorf("WithJobTimeout(%v): need a positive duration", d)
		}
		c.jobTimeout = d
		return nil
	}
}

// Retry sets the wait before a failed job runs again, by its attempt; by
// default backi.ExponentialBackoff(time.Second, time.Hour). b must not be nil.
func WithRetryBackoff(b backi.Backoff) WorkerOption {
	return func(c *consumer) error {
		if b == nil {
			return errors.New("WithRetryBackoff(nil): backoff is nil")
		}
		c.retry = b
		return nil
	}
}

// WithPoll sets the longest wait of an idle worker before it looks for jobs
// again: at least 10ms, DefaultPoll by default. With the Queue running as a
// service, enqueues wake idle workers at once, and polling finds only what a
// notification missed and jobs enqueued to run later.
func WithPoll(d time.Duration) WorkerOption {
	return func(c *consumer) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("WithPoll(%v): need at least 10ms", d)
		}
		c.poll = d
		return nil
	}
}

// WithTransactionHeld makes the worker hold the jobs it claims with row locks in
// an open transaction, instead of a lease: the handler gets that
// transaction (Job.Tx), and the jobs' deletion commits with what the
// handlers wrote, so that their effects in the same database happen
// exactly once. A crash rolls everything back, the jobs included, which
// other workers then take again; as the rollback also forgets the attempt,
// a job that crashes the process runs again without end. The batch's
// connection stays in a transaction while its jobs run, so keep batches
// short.
func WithTransactionHeld() WorkerOption {
	return func(c *consumer) error {
		c.held = true
		return nil
	}
}

// WithKeepDone makes the worker keep the jobs it has done, in the state done,
// instead of deleting them; a Cleaner deletes them after a while. Job.Complete
// still deletes its job.
func WithKeepDone() WorkerOption {
	return func(c *consumer) error {
		c.keepDone = true
		return nil
	}
}

// WithWorkerOptions passes options to the backi.Worker: concurrency, a
// failure hook for the worker's own failures (the database's), an
// observer, leadership... The worker sets backi.WithIdle from WithPoll; a
// WithIdle here replaces it.
func WithWorkerOptions(opts ...backi.Option) WorkerOption {
	return func(c *consumer) error {
		c.opts = append(c.opts, opts...)
		return nil
	}
}

// consumer is one Worker's configuration and state, shared by its loops.
type consumer struct {
	q          *Queue
	queue      string
	handler    Handler
	batch      int
	lease      time.Duration
	jobTimeout time.Duration
	retry      backi.Backoff
	poll       time.Duration
	held       bool
	keepDone   bool
	opts       []backi.Option

	rescued atomic.Int64 // UnixNano of the latest rescue of expired leases
}

// maxRounds bounds the batches of one iteration, so that the worker's status
// moves while a long queue drains.
const maxRounds = 16

// recordTimeout bounds the recording of a batch's outcomes once the worker
// stops.
const recordTimeout = 5 * time.Second

// Worker returns a worker that runs handler for the jobs of queue in q. Each
// iteration claims up to a batch of due jobs, runs them, records their
// outcomes (done jobs are deleted), and claims the next batch in the same
// round trip, for up to 16 batches; with no job due it returns
// backi.ErrNoWork. Delivery is at least once: a job whose run's outcome
// was not recorded (the process died) runs again. The worker is named
// "pgqueue:" + queue, or "pgqueue:" + schema + "." + queue for a queue in a
// schema other than DefaultSchema, so that one host can run the workers of
// two schemas. An invalid option is reported by Run.
func Worker(q *Queue, queue string, handler Handler, opts ...WorkerOption) *backi.Worker {
	c := &consumer{q: q, queue: queue, handler: handler, batch: DefaultBatch, lease: DefaultLease, poll: DefaultPoll,
		retry: backi.ExponentialBackoff(time.Second, time.Hour)}
	err := c.configure(opts)
	bopts := append([]backi.Option{backi.WithIdle(min(10*time.Millisecond, c.poll), c.poll)}, c.opts...)
	if err != nil {
		bopts = append(bopts, backi.Invalid(fmt.Errorf("pgqueue: %w", err)))
	}
	name := "pgqueue:" + queue
	if q != nil && q.name != DefaultSchema {
		name = "pgqueue:" + q.name + "." + queue
	}
	w := backi.Loop(name, c.iterate, bopts...)
	if q != nil && err == nil {
		q.register(queue, w)
	}
	return w
}

func (c *consumer) configure(opts []WorkerOption) error {
	switch {
	case c.q == nil:
		return errors.New("Worker(nil, ...): the queue is nil")
	case c.queue == "":
		return errors.New("Worker: the queue name is empty")
	case c.handler == nil:
		return fmt.Errorf("Worker(%q): the handler is nil", c.queue)
	}
	for _, o := range opts {
		if o == nil {
			return fmt.Errorf("Worker(%q): a nil WorkerOption", c.queue)
		}
		if err := o(c); err != nil {
			return fmt.Errorf("Worker(%q): %w", c.queue, err)
		}
	}
	return nil
}

// iterate is one turn of a loop of the worker: up to maxRounds batches. A
// leased batch's connection goes back to the pool while its jobs run, for
// the handlers and the heartbeat to use.
func (c *consumer) iterate(ctx context.Context) error {
	conn, err := c.q.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgqueue: %q: %w", c.queue, err)
	}
	if c.held {
		defer conn.Release()
		return c.iterateHeld(ctx, conn)
	}
	if err := c.rescue(ctx, conn); err != nil {
		conn.Release()
		return err
	}
	claimed := time.Now()
	jobs, err := c.exchange(ctx, conn, nil, nil, true)
	conn.Release()
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		return backi.ErrNoWork
	}
	for round := 1; ; round++ {
		errs, conn, err := c.runLeased(ctx, jobs, claimed)
		if err != nil {
			return err
		}
		claimed = time.Now()
		jobs, err = c.exchange(ctx, conn, jobs, errs, round < maxRounds)
		conn.Release()
		if err != nil || len(jobs) == 0 {
			return err
		}
	}
}

// acquire takes a connection to record outcomes with: it waits as long as
// the worker runs, and recordTimeout at most once it stops.
func (c *consumer) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if ctx.Err() == nil {
		conn, err := c.q.pool.Acquire(ctx)
		if err == nil || ctx.Err() == nil {
			return conn, err
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return c.q.pool.Acquire(rctx)
}

// claimSQL leases up to $2 due jobs of queue $1 for $3 seconds.
const claimSQL = `
UPDATE %[1]s AS j SET state = 1, attempts = j.attempts + 1, lease_until = now() + make_interval(secs => $3)
FROM (
	SELECT id FROM %[1]s WHERE queue = $1 AND state = 0 AND run_at <= now()
	ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
) AS due
WHERE j.id = due.id
RETURNING j.id, j.payload, j.attempts, j.max_attempts, j.priority, j.run_at, j.created_at`

// exchange records the outcomes errs of jobs and, if claim and ctx is not
// done, claims the next batch, in one round trip, and returns the jobs
// claimed. The round trip is not cut short by ctx, so that no outcome or
// claim is lost to a stop: recordTimeout bounds it.
func (c *consumer) exchange(ctx context.Context, conn *pgxpool.Conn, jobs []*Job, errs []error, claim bool) ([]*Job, error) {
	b := &pgx.Batch{}
	c.queueOutcomes(b, jobs, errs)
	claim = claim && ctx.Err() == nil
	if claim {
		b.Queue(fmt.Sprintf(claimSQL, c.q.table), c.queue, c.batch, c.lease.Seconds())
	}
	if b.Len() == 0 {
		return nil, nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	next, err := c.send(rctx, conn, b, claim)
	if err != nil {
		return nil, err
	}
	if len(next) > 0 && ctx.Err() != nil { // stopped meanwhile: give them back at once
		released := make([]error, len(next))
		for i := range released {
			released[i] = errReleased
		}
		_, err := c.exchange(ctx, conn, next, released, false)
		return nil, err
	}
	return next, nil
}

// send sends b and, if claim, returns the jobs that its last statement
// claimed. Its statements run in one implicit transaction: if one fails,
// none is recorded. The connection is free again when it returns.
func (c *consumer) send(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, claim bool) ([]*Job, error) {
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	records := b.Len()
	if claim {
		records--
	}
	for i := range records {
		if _, err := br.Exec(); err != nil {
			return nil, fmt.Errorf("pgqueue: %q: record outcomes (statement %d): %w", c.queue, i+1, err)
		}
	}
	if !claim {
		return nil, br.Close()
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("pgqueue: %q: claim: %w", c.queue, err)
	}
	next, err := c.scan(rows)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: %q: claim: %w", c.queue, err)
	}
	return next, br.Close()
}

// scan reads claimed jobs, and orders them as the claim chose them.
func (c *consumer) scan(rows pgx.Rows) ([]*Job, error) {
	defer rows.Close()
	var jobs []*Job
	for rows.Next() {
		j := &Job{Queue: c.queue, q: c.q}
		var attempts, maxAttempts int32
		if err := rows.Scan(&j.ID, &j.Payload, &attempts, &maxAttempts, &j.Priority, &j.RunAt, &j.CreatedAt); err != nil {
			return nil, err
		}
		j.owned, j.Attempt, j.MaxAttempts = attempts, int(attempts), int(maxAttempts)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b *Job) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), a.RunAt.Compare(b.RunAt), cmp.Compare(a.ID, b.ID))
	})
	return jobs, nil
}

// errReleased is the outcome of a job the worker did not run, or whose run
// the worker's stop cut short: it is put back, its attempt not counted.
var errReleased = errors.New("pgqueue: released")

// runLeased runs jobs, claimed at the time claimed, extending their lease
// while they run, and until it has a connection to record their outcomes
// with, which it returns. It does not start a job whose lease may have run
// out (the process was paused, or the heartbeat failed): the job is put back
// if it is still this worker's.
func (c *consumer) runLeased(ctx context.Context, jobs []*Job, claimed time.Time) ([]error, *pgxpool.Conn, error) {
	hb := c.heartbeat(jobs, claimed)
	defer hb.stop()
	errs := c.runAll(ctx, jobs, hb.holds)
	conn, err := c.acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("pgqueue: %q: record outcomes: %w", c.queue, err)
	}
	return errs, conn, nil
}

// runAll runs the handler for each job, one after the other, on a goroutine
// of their own, so that a handler that calls runtime.Goexit fails its job
// only: the jobs after it run on a new goroutine.
// holds, if not nil, says whether a job's lease is still the worker's.
func (c *consumer) runAll(ctx context.Context, jobs []*Job, holds func(*Job) bool) []error {
	errs := make([]error, len(jobs))
	for i := 0; i < len(jobs); {
		reached := make(chan int, 1)
		go func() {
			next := i
			defer func() { reached <- next }()
			for ; next < len(jobs); next++ {
				errs[next] = c.runOne(ctx, jobs[next], holds)
			}
		}()
		if i = <-reached; i < len(jobs) {
			errs[i] = errGoexit
			i++
		}
	}
	return errs
}

var errGoexit = errors.New("pgqueue: the handler called runtime.Goexit")

// runOne runs the handler for job, and returns its outcome: nil when done.
// Should the handler call runtime.Goexit, the job's savepoint is rolled back
// on the way out, and runAll records the failure.
func (c *consumer) runOne(ctx context.Context, job *Job, holds func(*Job) bool) (err error) {
	if ctx.Err() != nil || holds != nil && !holds(job) {
		return errReleased
	}
	jctx := ctx
	if c.jobTimeout > 0 {
		var cancel context.CancelFunc
		jctx, cancel = context.WithTimeout(ctx, c.jobTimeout)
		defer cancel()
	}
	normal := false
	defer func() {
		p := recover()
		switch {
		case p != nil:
			err = &backi.PanicError{Value: p, Stack: debug.Stack()}
		case !normal:
			err = errGoexit
		case err != nil && errors.Is(ctx.Err(), context.Canceled):
			// Cut short by the stop: not the job's failure. An iteration's
			// deadline (backi.WithTimeout) is, as WithJobTimeout's is.
			err = errReleased
		}
		err = c.endSavepoint(ctx, job, err)
	}()
	err = c.handler(jctx, job)
	normal = true
	return err
}

// errTxAborted is the outcome of a held job whose handler returned nil
// after a statement of its transaction failed: its writes cannot commit.
var errTxAborted = errors.New("pgqueue: a statement in the job's transaction failed, though the handler returned nil")

// endSavepoint keeps the savepoint of job, if it has one, when err is nil,
// and rolls it back otherwise; it returns the job's outcome.
func (c *consumer) endSavepoint(ctx context.Context, job *Job, err error) error {
	if job.sp == nil {
		return err
	}
	sp := job.sp
	job.sp = nil
	if err == nil && job.held.Conn().PgConn().TxStatus() == 'E' {
		err = errTxAborted
	}
	if err != nil {
		if rerr := sp.Rollback(context.WithoutCancel(ctx)); rerr != nil {
			return errors.Join(err, fmt.Errorf("pgqueue: roll back the job's savepoint: %w", rerr))
		}
		return err
	}
	if cerr := sp.Commit(context.WithoutCancel(ctx)); cerr != nil {
		return fmt.Errorf("pgqueue: release the job's savepoint: %w", cerr)
	}
	return nil
}

// Outcomes, as the statements record them.
const (
	statePending = 0
	stateDead    = 2
)

// keptSQL marks jobs done, by id and lease token, for WithKeepDone.
const keptSQL = `
UPDATE %[1]s AS j SET state = 3, finished_at = now(), lease_until = NULL
FROM unnest($1::bigint[], $2::integer[]) AS d(id, token)
WHERE j.id = d.id AND j.attempts = d.token AND j.state = $3`

// doneSQL deletes leased jobs by id and lease token.
const doneSQL = `
DELETE FROM %[1]s AS j USING unnest($1::bigint[], $2::integer[]) AS d(id, token)
WHERE j.id = d.id AND j.attempts = d.token AND j.state = $3`

// settleSQL records the jobs that did not succeed: each goes back to
// pending, due after its wait, or is dead; refund is the attempts given
// back (a release or a snooze).
const settleSQL = `
UPDATE %[1]s AS j SET state = f.state, run_at = now() + make_interval(secs => f.wait),
	attempts = j.attempts - f.refund + $8, lease_until = NULL,
	last_error = coalesce(f.err, j.last_error), last_error_at = CASE WHEN f.err IS NULL THEN j.last_error_at ELSE now() END,
	finished_at = CASE WHEN f.state = 2 THEN now() END
FROM unnest($1::bigint[], $2::integer[], $3::smallint[], $4::float8[], $5::integer[], $6::text[]) AS f(id, token, state, wait, refund, err)
WHERE j.id = f.id AND j.attempts = f.token AND j.state = $7`

// queueOutcomes adds to b the statements that record the outcomes errs of
// jobs: one for the done ones, one for the others.
func (c *consumer) queueOutcomes(b *pgx.Batch, jobs []*Job, errs []error) {
	held, bump := 1, 0 // a leased job is running, and its claim counted the attempt
	if c.held {
		held, bump = 0, 1 // a held job is still pending; a failure counts its attempt
	}
	var done, doneTokens []int64
	var s struct {
		ids, tokens, refunds []int64
		states               []int16
		waits                []float64
		errs                 []*string
	}
	for i, job := range jobs {
		err := errs[i]
		if err == nil {
			if !job.done {
				done, doneTokens = append(done, job.ID), append(doneTokens, int64(job.owned))
			}
			continue
		}
		state, wait, refund, text := c.settle(job, err, bump)
		s.ids, s.tokens, s.states = append(s.ids, job.ID), append(s.tokens, int64(job.owned)), append(s.states, state)
		s.waits, s.refunds, s.errs = append(s.waits, wait.Seconds()), append(s.refunds, refund), append(s.errs, text)
	}
	if len(done) > 0 {
		sql := doneSQL
		if c.keepDone {
			sql = keptSQL
		}
		b.Queue(fmt.Sprintf(sql, c.q.table), done, doneTokens, held)
	}
	if len(s.ids) > 0 {
		b.Queue(fmt.Sprintf(settleSQL, c.q.table), s.ids, s.tokens, s.states, s.waits, s.refunds, s.errs, held, bump)
	}
}

// settle says what becomes of job after err: its state, the wait before it
// runs again, the attempt given back (the statement adds bump, the attempt
// that a held job's claim did not count), and the error to keep (nil to
// keep the last one).
func (c *consumer) settle(job *Job, err error, bump int) (state int16, wait time.Duration, refund int64, text *string) {
	r := read(err)
	switch {
	case r.released:
		return statePending, 0, 1, nil
	case r.snoozed != nil:
		return statePending, max(r.snoozed.d, 0), 1, nil
	}
	msg := safe.Text(err)
	if r.panicked != nil {
		msg += "\n" + string(r.panicked.Stack)
	}
	if r.cancelled || job.Attempt >= job.MaxAttempts {
		return stateDead, 0, 0, &msg
	}
	return statePending, c.retryWait(job.Attempt), 0, &msg
}

// reading is what a handler's error says of its job's outcome.
type reading struct {
	released  bool
	snoozed   *snooze // the first found
	cancelled bool
	panicked  *backi.PanicError // the first found
}

// maxErrorNodes bounds the errors that read visits in one error's tree.
const maxErrorNodes = 100

// read finds in err's tree what settle needs, as errors.Is and errors.As
// would, but by type alone (calling no Is or As method), and containing
// the tree's Unwrap methods: one that panics hides what lies below it, and
// no more than maxErrorNodes errors are visited, should Unwrap return its
// receiver.
func read(err error) (r reading) {
	budget := maxErrorNodes
	defer func() { recover() }() // an Unwrap panicked: r holds what was found
	var walk func(err error)
	walk = func(err error) {
		for err != nil && budget > 0 {
			budget--
			if err == errReleased {
				r.released = true
			}
			switch e := err.(type) {
			case *snooze:
				if r.snoozed == nil {
					r.snoozed = e
				}
			case *cancelled:
				r.cancelled = true
			case *backi.PanicError:
				if r.panicked == nil {
					r.panicked = e
				}
			}
			switch u := err.(type) {
			case interface{ Unwrap() error }:
				err = u.Unwrap()
			case interface{ Unwrap() []error }:
				for _, e := range u.Unwrap() {
					walk(e)
				}
				return
			default:
				return
			}
		}
	}
	walk(err)
	return r
}

// retryWait asks the retry backoff for the wait after the failure of
// attempt, containing a panic (then a minute).
func (c *consumer) retryWait(attempt int) (d time.Duration) {
	defer func() {
		if recover() != nil || d < 0 {
			d = time.Minute
		}
	}()
	return c.retry.Wait(attempt)
}

// rescueSQL puts back the jobs of queue $1 whose lease ran out, or ends
// them as dead when they have no attempt left.
const rescueSQL = `
UPDATE %[1]s SET state = CASE WHEN attempts >= max_attempts THEN 2 ELSE 0 END, lease_until = NULL, run_at = now(),
	last_error = 'pgqueue: the lease ran out: the process running the job stopped or hung', last_error_at = now(),
	finished_at = CASE WHEN attempts >= max_attempts THEN now() END
WHERE state = 1 AND lease_until < now() AND queue = $1`

// rescue puts back the jobs whose lease ran out, at most once a tenth of a
// lease for the worker's loops together.
func (c *consumer) rescue(ctx context.Context, conn *pgxpool.Conn) error {
	now := time.Now().UnixNano()
	last := c.rescued.Load()
	if now-last < int64(c.lease/10) || !c.rescued.CompareAndSwap(last, now) {
		return nil
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(rescueSQL, c.q.table), c.queue); err != nil {
		return fmt.Errorf("pgqueue: %q: rescue expired leases: %w", c.queue, err)
	}
	return nil
}

// A heartbeat extends the lease of a batch's jobs every third of a lease,
// on a connection of its own, while they run.
type heartbeat struct {
	c       *consumer
	ids     []int64
	tokens  []int64
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	beating sync.WaitGroup
	// until is when each job's lease ends at the earliest, by this
	// process's clock: a lease's time from the sending of the statement
	// that last claimed or extended it.
	until map[int64]time.Time
}

// extendSQL extends the leases of the batch's jobs that are still its own.
// It skips the rows another transaction holds locked (a handler's, after
// Job.Complete, or a rescue's), so that one locked row does not keep the
// leases of the batch's other jobs from being extended.
const extendSQL = `
UPDATE %[1]s AS j SET lease_until = now() + make_interval(secs => $3)
FROM (
	SELECT s.id FROM %[1]s AS s JOIN unnest($1::bigint[], $2::integer[]) AS l(id, token) ON s.id = l.id AND s.attempts = l.token
	WHERE s.state = 1 FOR UPDATE OF s SKIP LOCKED
) AS mine
WHERE j.id = mine.id
RETURNING j.id`

func (c *consumer) heartbeat(jobs []*Job, claimed time.Time) *heartbeat {
	h := &heartbeat{c: c, until: make(map[int64]time.Time, len(jobs))}
	for _, j := range jobs {
		h.ids, h.tokens = append(h.ids, j.ID), append(h.tokens, int64(j.owned))
		h.until[j.ID] = claimed.Add(c.lease)
	}
	h.mu.Lock() // beat reads the timer under the lock
	h.timer = time.AfterFunc(c.lease/3, h.beat)
	h.mu.Unlock()
	return h
}

func (h *heartbeat) beat() {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.beating.Add(1)
	h.mu.Unlock()
	defer h.beating.Done()
	ctx, cancel := context.WithTimeout(context.Background(), h.c.lease/3)
	defer cancel()
	sent := time.Now()
	rows, _ := h.c.q.pool.Query(ctx, fmt.Sprintf(extendSQL, h.c.q.table), h.ids, h.tokens, h.c.lease.Seconds())
	extended, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		h.c.q.log.LogAttrs(ctx, slog.LevelError, "pgqueue: could not extend the jobs' lease", slog.String("queue", h.c.queue), slog.Any("err", err))
	}
	h.mu.Lock()
	for _, id := range extended {
		h.until[id] = sent.Add(h.c.lease)
	}
	if !h.stopped {
		h.timer.Reset(h.c.lease / 3)
	}
	h.mu.Unlock()
}

// holds says whether job's lease is still the worker's, with a tenth of a
// lease to spare.
func (h *heartbeat) holds(job *Job) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Add(h.c.lease / 10).Before(h.until[job.ID])
}

// stop ends the heartbeat, and waits for an extension in flight.
func (h *heartbeat) stop() {
	h.mu.Lock()
	h.stopped = true
	h.timer.Stop()
	h.mu.Unlock()
	h.beating.Wait()
}

// holdSQL locks up to $2 due jobs of queue $1 in the caller's transaction.
const holdSQL = `
SELECT id, payload, attempts, max_attempts, priority, run_at, created_at FROM %[1]s
WHERE queue = $1 AND state = 0 AND run_at <= now()
ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`

// iterateHeld is iterate for a WithTransactionHeld worker: one batch, in one
// transaction.
func (c *consumer) iterateHeld(ctx context.Context, conn *pgxpool.Conn) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgqueue: %q: %w", c.queue, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	rows, err := tx.Query(ctx, fmt.Sprintf(holdSQL, c.q.table), c.queue, c.batch)
	if err != nil {
		return fmt.Errorf("pgqueue: %q: %w", c.queue, err)
	}
	jobs, err := c.scan(rows)
	if err != nil {
		return fmt.Errorf("pgqueue: %q: %w", c.queue, err)
	}
	if len(jobs) == 0 {
		tx.Rollback(ctx)
		return backi.ErrNoWork
	}
	for _, j := range jobs {
		j.held = tx
		j.Attempt++ // this run
	}
	errs := c.runAll(ctx, jobs, nil)
	b := &pgx.Batch{}
	c.queueOutcomes(b, jobs, errs)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if b.Len() > 0 {
		if err := tx.SendBatch(rctx, b).Close(); err != nil {
			return fmt.Errorf("pgqueue: %q: record outcomes: %w", c.queue, err)
		}
	}
	if err := tx.Commit(rctx); err != nil {
		return fmt.Errorf("pgqueue: %q: commit: %w", c.queue, err)
	}
	return nil
}
