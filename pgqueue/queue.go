package pgqueue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/backi-go/backi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the SQL that Migrate runs: the table backi_jobs and its indexes,
// created in the search_path's first schema. Every statement is idempotent.
//
//go:embed schema.sql
var Schema string

// DefaultSchema is the schema of the queue's table without WithSchema.
const DefaultSchema = "public"

// notifyChannel is the channel of the notifications that enqueues send.
const notifyChannel = "backi_jobs"

// Queue is a PostgreSQL job queue: the table backi_jobs in one schema, on a
// connection pool. It enqueues jobs (Enqueue), makes the workers that
// consume them (Worker), and, run as a backi.Service, listens on one
// connection for the notifications enqueues send, to wake those workers at
// once. Its methods are safe for concurrent use. New connects to nothing.
type Queue struct {
	pool  *pgxpool.Pool
	table string // the qualified, quoted table name
	name  string // the schema's name, unquoted
	log   *slog.Logger

	mu      sync.Mutex
	waiting map[string][]weak.Pointer[backi.Worker] // by queue name, the workers to wake
}

// A QueueOption configures New.
type QueueOption func(*Queue) error

// WithSchema puts the queue's table in the schema name (DefaultSchema
// otherwise), which Migrate creates if it does not exist.
func WithSchema(name string) QueueOption {
	return func(q *Queue) error {
		if name == "" || strings.ContainsRune(name, 0) {
			return fmt.Errorf("WithSchema(%q): need a name without NUL", name)
		}
		q.name = name
		return nil
	}
}

// WithLogger sets the logger of the queue's listener; the default is
// slog.Default(). It must not be nil.
func WithLogger(l *slog.Logger) QueueOption {
	return func(q *Queue) error {
		if l == nil {
			return errors.New("WithLogger(nil): logger is nil")
		}
		q.log = l
		return nil
	}
}

// New returns the queue on pool. It connects to nothing; call Migrate once
// to create the table.
func New(pool *pgxpool.Pool, opts ...QueueOption) (*Queue, error) {
	if pool == nil {
		return nil, errors.New("pgqueue: New(nil): pool is nil")
	}
	q := &Queue{pool: pool, name: DefaultSchema, log: slog.Default(), waiting: map[string][]weak.Pointer[backi.Worker]{}}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("pgqueue: nil QueueOption")
		}
		if err := o(q); err != nil {
			return nil, fmt.Errorf("pgqueue: %w", err)
		}
	}
	q.table = pgx.Identifier{q.name, "backi_jobs"}.Sanitize()
	return q, nil
}

// Migrate creates the queue's schema, table and indexes (see Schema), those
// that do not exist. It is idempotent, and replicas may call it at once: it
// runs under an advisory lock, in one transaction.
func (q *Queue) Migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('backi_jobs migrate', 0))`); err != nil {
			return err
		}
		// CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even
		// when the schema exists: create it only when it does not.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, q.name).Scan(&exists); err != nil {
			return err
		}
		schema := pgx.Identifier{q.name}.Sanitize()
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, Schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgqueue: migrate schema %q: %w", q.name, err)
	}
	return nil
}

// Name implements backi.Service: "pgqueue listener " and the schema's name,
// so that the queues of two schemas may run in one host.
func (q *Queue) Name() string { return "pgqueue listener " + q.name }

// Run implements backi.Service: it listens for the notifications that
// enqueues send, on one connection of the pool (taken out of it), and wakes
// the idle workers of the queue each names, until ctx is done; then it
// returns nil. Without it, workers find new jobs by polling, at their idle
// wait (see WithPoll). When the connection fails, Run wakes every worker (a
// notification may have been lost) and connects again after a second.
func (q *Queue) Run(ctx context.Context) error {
	for {
		err := q.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		q.log.LogAttrs(ctx, slog.LevelWarn, "pgqueue: listening failed; workers poll until it is back", slog.Any("err", err))
		q.wakeAll()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// listen holds one connection listening for notifications, until ctx is
// done or the connection fails.
func (q *Queue) listen(ctx context.Context) error {
	pc, err := q.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		return err
	}
	q.wakeAll() // what was enqueued before the LISTEN
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		q.wake(n.Payload)
	}
}

// register makes w one of the workers that a notification for queue wakes,
// for as long as w is in use: the queue does not keep it alive, and forgets
// the workers that were dropped.
func (q *Queue) register(queue string, w *backi.Worker) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for name, ps := range q.waiting {
		var live []weak.Pointer[backi.Worker] // a new array: wake may read the old one
		for _, p := range ps {
			if p.Value() != nil {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			delete(q.waiting, name)
		} else {
			q.waiting[name] = live
		}
	}
	q.waiting[queue] = append(q.waiting[queue], weak.Make(w))
}

// wake wakes one idle loop of each worker of queue: a notification tells of
// one enqueue, and a loop that finds more claims them all.
func (q *Queue) wake(queue string) {
	q.mu.Lock()
	ps := q.waiting[queue]
	q.mu.Unlock()
	for _, p := range ps {
		if w := p.Value(); w != nil {
			w.WakeOne()
		}
	}
}

func (q *Queue) wakeAll() {
	q.mu.Lock()
	var ps []weak.Pointer[backi.Worker]
	for _, list := range q.waiting {
		ps = append(ps, list...)
	}
	q.mu.Unlock()
	for _, p := range ps {
		if w := p.Value(); w != nil {
			w.Wake()
		}
	}
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
