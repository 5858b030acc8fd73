package pgqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/backi-go/backi"
)

// DefaultCleanEvery is how often a Cleaner runs.
const DefaultCleanEvery = time.Minute

// cleanBatch bounds the rows one statement of a Cleaner deletes, so that no
// statement holds many locks for long.
const cleanBatch = 10000

// Cleaner returns a periodic worker, named "pgqueue cleaner", that deletes,
// every DefaultCleanEvery, the done jobs (see WithKeepDone) older than keepDone
// and, if keepDead is positive, the dead jobs older than keepDead. Run it on
// one replica (backi.WithLeader, among opts), or on every one: the deletions
// do not conflict. keepDone must not be negative.
func (q *Queue) Cleaner(keepDone, keepDead time.Duration, opts ...backi.Option) *backi.Worker {
	if keepDone < 0 {
		opts = append(opts, backi.Invalid(fmt.Errorf("pgqueue: Cleaner: keepDone %v is negative", keepDone)))
	}
	clean := func(ctx context.Context) error {
		for _, c := range []struct {
			state int
			keep  time.Duration
		}{{3, keepDone}, {stateDead, keepDead}} {
			if c.state == stateDead && c.keep <= 0 {
				continue
			}
			for {
				tag, err := q.pool.Exec(ctx, fmt.Sprintf(`
					DELETE FROM %[1]s WHERE id IN (
						SELECT id FROM %[1]s WHERE state = $1 AND finished_at < now() - make_interval(secs => $2) LIMIT $3)`, q.table),
					c.state, c.keep.Seconds(), cleanBatch)
				if err != nil {
					return fmt.Errorf("pgqueue: clean: %w", err)
				}
				if tag.RowsAffected() < cleanBatch {
					break
				}
			}
		}
		return nil
	}
	return backi.Loop("pgqueue cleaner", clean, append([]backi.Option{backi.WithSchedule(backi.Every(DefaultCleanEvery))}, opts...)...)
}
