package pgqueue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultMaxAttempts is how many times a job runs before it is dead, unless
// its enqueue says otherwise (MaxAttempts).
const DefaultMaxAttempts = 25

// DB is what Enqueue writes with: a pgx.Tx, to enqueue in the caller's
// transaction (the job exists if and only if the transaction commits), or a
// *pgx.Conn, a *pgxpool.Pool or a *pgxpool.Conn, to enqueue at once.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// NewJob is a job to enqueue.
type NewJob struct {
	Queue   string // required
	Payload []byte // JSON, or any bytes the queue's handler reads
	// RunAt is when the job becomes due; now if zero.
	RunAt time.Time
	// Priority orders the due jobs of a queue: higher first, then by RunAt,
	// then in the order enqueued.
	Priority int16
	// MaxAttempts is how many times the job may run before it is dead;
	// DefaultMaxAttempts if zero, and at most 2^31-1 (more counts as that).
	MaxAttempts int
	// UniqueKey, if not empty, makes the enqueue a no-op while a pending or
	// running job of the queue has the same key.
	UniqueKey string
}

// check validates j and fills in its defaults.
func (j *NewJob) check() error {
	switch {
	case j.Queue == "":
		return errors.New("the queue name is empty")
	case j.MaxAttempts < 0 || j.MaxAttempts > math.MaxInt32:
		return fmt.Errorf("MaxAttempts %d: need 0 (for DefaultMaxAttempts) to %d", j.MaxAttempts, math.MaxInt32)
	}
	if j.MaxAttempts == 0 {
		j.MaxAttempts = DefaultMaxAttempts
	}
	j.MaxAttempts = min(j.MaxAttempts, math.MaxInt32) // the column's range
	if j.Payload == nil {
		j.Payload = []byte{}
	}
	return nil
}

// args are the job's columns, as the insert statements take them: a zero
// RunAt and an empty UniqueKey as NULL.
func (j *NewJob) args() (runAt *time.Time, uniqueKey *string) {
	if !j.RunAt.IsZero() {
		runAt = &j.RunAt
	}
	if j.UniqueKey != "" {
		uniqueKey = &j.UniqueKey
	}
	return runAt, uniqueKey
}

// Enqueued says what an enqueue did.
type Enqueued struct {
	ID int64 // the job's id; 0 for a duplicate
	// Duplicate is true when a pending or running job of the queue had the
	// same UniqueKey: nothing was enqueued.
	Duplicate bool
}

// insertOne inserts one job, and notifies the queue's listeners when it is
// due at once; the notification is sent when the transaction commits. Due
// is by the clock, not by now(), the transaction's start, which a job due
// now, enqueued late in a long transaction, is after.
const insertOne = `
WITH ins AS (
	INSERT INTO %[1]s (queue, payload, priority, run_at, max_attempts, unique_key)
	VALUES ($1, $2, $3, COALESCE($4, now()), $5, $6)
	ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN (0, 1) DO NOTHING
	RETURNING id, run_at
)
SELECT coalesce((SELECT id FROM ins), 0),
	(SELECT count(pg_notify('` + notifyChannel + `', $1)) FROM ins WHERE run_at <= clock_timestamp())`

// Enqueue adds job to its queue with db: in the caller's transaction when db
// is a pgx.Tx.
func (q *Queue) Enqueue(ctx context.Context, db DB, job NewJob) (Enqueued, error) {
	return q.enqueue(job, func(query string, args ...any) row { return db.QueryRow(ctx, query, args...) })
}

// SQLDB is what EnqueueSQL writes with: a *sql.Tx, to enqueue in the
// caller's transaction, or a *sql.DB or a *sql.Conn, to enqueue at once.
type SQLDB interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// EnqueueSQL is Enqueue for database/sql on the pgx driver
// (github.com/jackc/pgx/v5/stdlib).
func (q *Queue) EnqueueSQL(ctx context.Context, db SQLDB, job NewJob) (Enqueued, error) {
	return q.enqueue(job, func(query string, args ...any) row { return db.QueryRowContext(ctx, query, args...) })
}

// row is a row that a query returned: a pgx.Row or a *sql.Row.
type row interface{ Scan(dest ...any) error }

func (q *Queue) enqueue(job NewJob, queryRow func(query string, args ...any) row) (Enqueued, error) {
	if err := job.check(); err != nil {
		return Enqueued{}, fmt.Errorf("pgqueue: enqueue to %q: %w", job.Queue, err)
	}
	runAt, key := job.args()
	var id, notified int64
	err := queryRow(fmt.Sprintf(insertOne, q.table), job.Queue, job.Payload, job.Priority, runAt, job.MaxAttempts, key).Scan(&id, &notified)
	if err != nil {
		return Enqueued{}, fmt.Errorf("pgqueue: enqueue to %q: %w", job.Queue, err)
	}
	return Enqueued{ID: id, Duplicate: id == 0}, nil
}

// insertMany inserts jobs from arrays, in one statement, and notifies each
// queue that got a job due at once.
const insertMany = `
WITH ins AS (
	INSERT INTO %[1]s (queue, payload, priority, run_at, max_attempts, unique_key)
	SELECT q, p, pr, coalesce(ra, now()), ma, uk
	FROM unnest($1::text[], $2::bytea[], $3::smallint[], $4::timestamptz[], $5::integer[], $6::text[]) AS j(q, p, pr, ra, ma, uk)
	ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN (0, 1) DO NOTHING
	RETURNING queue, run_at
)
SELECT (SELECT count(*) FROM ins),
	(SELECT count(pg_notify('` + notifyChannel + `', queue)) FROM (SELECT DISTINCT queue FROM ins WHERE run_at <= clock_timestamp()) AS due)`

// EnqueueMany adds jobs with db in one statement, and returns how many it
// added: fewer than len(jobs) when some had the UniqueKey of a pending or
// running job.
func (q *Queue) EnqueueMany(ctx context.Context, db DB, jobs []NewJob) (int, error) {
	if len(jobs) == 0 {
		return 0, nil
	}
	queues := make([]string, len(jobs))
	payloads := make([][]byte, len(jobs))
	priorities := make([]int16, len(jobs))
	runAts := make([]*time.Time, len(jobs))
	maxAttempts := make([]int32, len(jobs))
	keys := make([]*string, len(jobs))
	for i, j := range jobs { // a copy: check fills in defaults
		if err := j.check(); err != nil {
			return 0, fmt.Errorf("pgqueue: enqueue %d jobs: job %d (to %q): %w", len(jobs), i, j.Queue, err)
		}
		queues[i], payloads[i], priorities[i], maxAttempts[i] = j.Queue, j.Payload, j.Priority, int32(j.MaxAttempts)
		runAts[i], keys[i] = j.args()
	}
	var added, notified int64
	err := db.QueryRow(ctx, fmt.Sprintf(insertMany, q.table), queues, payloads, priorities, runAts, maxAttempts, keys).Scan(&added, &notified)
	if err != nil {
		return 0, fmt.Errorf("pgqueue: enqueue %d jobs: %w", len(jobs), err)
	}
	return int(added), nil
}
