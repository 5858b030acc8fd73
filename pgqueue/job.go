package pgqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Job is one job a Handler runs.
type Job struct {
	ID      int64
	Queue   string
	Payload []byte
	// Attempt counts the runs of the job, this one included, from 1.
	Attempt     int
	MaxAttempts int
	Priority    int16
	RunAt       time.Time // when it was due
	CreatedAt   time.Time

	q     *Queue
	held  pgx.Tx // the transaction that holds the job (WithTransactionHeld), else nil
	sp    pgx.Tx // the job's savepoint in held, once Tx made it
	owned int32  // the attempts count the claim set: the lease's token
	done  bool   // Complete deleted the job
}

// ErrLeaseLost is returned by Job.Complete when the job is no longer this
// worker's: its lease ran out and it was given to another run, or it was
// deleted. Roll the transaction back.
var ErrLeaseLost = errors.New("pgqueue: the job's lease was lost")

// Tx returns the job's transaction, for a worker made with WithTransactionHeld:
// a savepoint of the transaction that holds the job's row locked, rolled
// back if the handler fails and kept if it succeeds; the job's deletion
// commits with it. The worker ends it when the handler returns: do not
// commit or roll it back. A statement in it that failed fails the job, even
// if the handler returns nil. Without WithTransactionHeld it returns an error.
func (j *Job) Tx(ctx context.Context) (pgx.Tx, error) {
	if j.held == nil {
		return nil, errors.New("pgqueue: Job.Tx: the worker is not TransactionHeld; open a transaction of your own and use Job.Complete")
	}
	if j.sp == nil {
		sp, err := j.held.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("pgqueue: job %d: savepoint: %w", j.ID, err)
		}
		j.sp = sp
	}
	return j.sp, nil
}

// Complete deletes the job in tx, the caller's transaction, so that the job
// is done if and only if tx commits: the effects the handler writes in tx
// happen once (if tx commits after the job's lease ran out, they may happen
// again in another run, unless the handler keys them by the job's ID). It
// returns ErrLeaseLost when the job is no longer this run's, and the handler
// should then roll tx back. A WithTransactionHeld job completes in Job.Tx's
// transaction, which commits with the batch; for any other, Complete
// returns an error, as that transaction would wait for the job's row lock.
func (j *Job) Complete(ctx context.Context, tx pgx.Tx) error {
	state := 1 // leased
	if j.held != nil {
		if tx.Conn() != j.held.Conn() {
			return fmt.Errorf("pgqueue: complete job %d: the worker is TransactionHeld: complete it in Job.Tx's transaction", j.ID)
		}
		state = 0 // held by a lock, and still pending
		if j.sp == nil || tx != j.sp {
			return fmt.Errorf("pgqueue: complete job %d: the worker is TransactionHeld: pass the job's transaction, from Job.Tx", j.ID)
		}
	}
	tag, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE id = $1 AND attempts = $2 AND state = $3`, j.q.table), j.ID, j.owned, state)
	if err != nil {
		return fmt.Errorf("pgqueue: complete job %d: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	j.done = true
	return nil
}

// Snooze, returned by a Handler, puts the job back to run again after d,
// without counting the run as an attempt.
func Snooze(d time.Duration) error { return &snooze{d} }

type snooze struct{ d time.Duration }

func (s *snooze) Error() string { return fmt.Sprintf("pgqueue: snoozed for %v", s.d) }

// Cancel, returned by a Handler, ends the job at once, as dead, with err as
// its last error, whatever attempts it had left.
func Cancel(err error) error { return &cancelled{err} }

type cancelled struct{ err error }

func (c *cancelled) Error() string { return fmt.Sprintf("pgqueue: cancelled: %v", c.err) }
func (c *cancelled) Unwrap() error { return c.err }
