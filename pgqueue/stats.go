package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Stats is what a queue holds at one moment.
type Stats struct {
	Queue string
	// Due counts the jobs that wait to run now; Later those due later.
	Due, Later int64
	// OldestDue is how long the oldest due job has waited (at most the
	// longest Duration); zero if none.
	OldestDue time.Duration
	// Running counts the jobs claimed and running (leased).
	Running int64
	// Retrying counts the pending jobs that failed before.
	Retrying int64
	// Dead counts the jobs that used their attempts or were cancelled.
	Dead int64
}

const statsSQL = `
SELECT queue,
	count(*) FILTER (WHERE state = 0 AND run_at <= now()),
	count(*) FILTER (WHERE state = 0 AND run_at > now()),
	coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 0 AND run_at <= now())), 0)::float8,
	count(*) FILTER (WHERE state = 1),
	count(*) FILTER (WHERE state = 0 AND attempts > 0),
	count(*) FILTER (WHERE state = 2)
FROM %s GROUP BY queue ORDER BY queue`

// Stats returns the stats of every queue that holds a job, by queue name.
// It reads the whole table: call it every few seconds, not per job.
func (q *Queue) Stats(ctx context.Context) ([]Stats, error) {
	rows, err := q.pool.Query(ctx, fmt.Sprintf(statsSQL, q.table))
	if err != nil {
		return nil, fmt.Errorf("pgqueue: stats: %w", err)
	}
	defer rows.Close()
	var out []Stats
	for rows.Next() {
		var s Stats
		var oldest float64
		if err := rows.Scan(&s.Queue, &s.Due, &s.Later, &oldest, &s.Running, &s.Retrying, &s.Dead); err != nil {
			return nil, fmt.Errorf("pgqueue: stats: %w", err)
		}
		s.OldestDue = math.MaxInt64 // past 292 years
		if ns := oldest * float64(time.Second); ns < math.MaxInt64 {
			s.OldestDue = time.Duration(ns)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgqueue: stats: %w", err)
	}
	return out, nil
}

// DeadJob is a job that used its attempts or was cancelled.
type DeadJob struct {
	ID          int64
	Queue       string
	Payload     []byte
	Attempts    int
	LastError   string
	LastErrorAt time.Time
	CreatedAt   time.Time
	DiedAt      time.Time
}

// Dead returns up to limit dead jobs of queue, the latest to die first.
func (q *Queue) Dead(ctx context.Context, queue string, limit int) ([]DeadJob, error) {
	if limit < 1 {
		return nil, fmt.Errorf("pgqueue: Dead(%q, %d): need a positive limit", queue, limit)
	}
	rows, err := q.pool.Query(ctx, fmt.Sprintf(`
		SELECT id, queue, payload, attempts, coalesce(last_error, ''), coalesce(last_error_at, created_at), created_at, coalesce(finished_at, created_at)
		FROM %s WHERE queue = $1 AND state = 2 ORDER BY finished_at DESC, id DESC LIMIT $2`, q.table), queue, limit)
	if err != nil {
		return nil, fmt.Errorf("pgqueue: dead jobs of %q: %w", queue, err)
	}
	defer rows.Close()
	var out []DeadJob
	for rows.Next() {
		var d DeadJob
		var attempts int32
		if err := rows.Scan(&d.ID, &d.Queue, &d.Payload, &attempts, &d.LastError, &d.LastErrorAt, &d.CreatedAt, &d.DiedAt); err != nil {
			return nil, fmt.Errorf("pgqueue: dead jobs of %q: %w", queue, err)
		}
		d.Attempts = int(attempts)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgqueue: dead jobs of %q: %w", queue, err)
	}
	return out, nil
}

// ErrUniqueKeyTaken is wrapped by the error of Retry when a pending or
// running job of the queue has the dead job's unique key.
var ErrUniqueKeyTaken = errors.New("pgqueue: a pending or running job has the unique key")

// ErrNotDead is returned by Retry and Discard for a job that is not dead
// (or does not exist).
var ErrNotDead = errors.New("pgqueue: no such dead job")

// Retry puts the dead job id back to run now, with as many attempts again
// as it had (its attempts so far are kept: they are the lease's token), and
// wakes the queue's workers (through the listener). It returns ErrNotDead
// for a job that is not dead, and an error wrapping ErrUniqueKeyTaken when a
// pending or running job of the queue has the dead job's unique key.
func (q *Queue) Retry(ctx context.Context, id int64) error { return q.retry(ctx, nil, id) }

// retry is Retry, of a job of queue only when queue is not nil.
func (q *Queue) retry(ctx context.Context, queue *string, id int64) error {
	var name string
	err := q.pool.QueryRow(ctx, fmt.Sprintf(`
		WITH r AS (
			UPDATE %s SET state = 0, max_attempts = least(attempts::bigint + max_attempts, 2147483647), run_at = now(), finished_at = NULL
			WHERE id = $1 AND state = 2 AND ($2::text IS NULL OR queue = $2) RETURNING queue
		)
		SELECT queue FROM r, LATERAL (SELECT pg_notify('`+notifyChannel+`', r.queue)) AS n`, q.table), id, queue).Scan(&name)
	if err != nil {
		if isNoRows(err) {
			return ErrNotDead
		}
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "23505" { // unique_violation
			return fmt.Errorf("pgqueue: retry job %d: %w", id, ErrUniqueKeyTaken)
		}
		return fmt.Errorf("pgqueue: retry job %d: %w", id, err)
	}
	return nil
}

// Discard deletes the dead job id.
func (q *Queue) Discard(ctx context.Context, id int64) error { return q.discard(ctx, nil, id) }

// discard is Discard, of a job of queue only when queue is not nil.
func (q *Queue) discard(ctx context.Context, queue *string, id int64) error {
	tag, err := q.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE id = $1 AND state = 2 AND ($2::text IS NULL OR queue = $2)`, q.table), id, queue)
	if err != nil {
		return fmt.Errorf("pgqueue: discard job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotDead
	}
	return nil
}
