package pgleader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/backi-go/backi"
	"github.com/jackc/pgx/v5"
)

// ErrStaleTerm is returned by Store.SaveRun when a newer term has recorded a
// run: the caller no longer leads, and its record is refused.
var ErrStaleTerm = errors.New("pgleader: a newer term has recorded a run")

// Store is a backi.ScheduleStore and a backi.ControlStore in PostgreSQL, in
// the tables backi_schedule_runs and backi_worker_controls, which it
// creates. With backi.WithLeader and this elector, a periodic worker runs
// each scheduled run once across replicas, restarts and failovers: the
// leader records each completed run with its term's fencing token, a deposed
// leader's record is refused, and a new leader continues from the last
// recorded run.
//
// Two windows remain, where a run is done again by the next leader: a leader
// that dies after its iteration ended and before the record was written, and
// an iteration that returns an error because the worker is stopping (its
// effect may have landed; it is not recorded). Key the iteration's effects by
// backi.ScheduledFor to make both harmless, and let an iteration that has
// begun a write finish it (context.WithoutCancel) rather than be cut off.
//
// The store keys runs by the worker's name and fences them with the terms of
// the worker's elector: give each periodic singleton an elector of the same
// name as the worker.
//
// As a ControlStore (backi.WithControlStore), it keeps whether each worker is
// paused, by name, so that a pause made on one replica holds on every
// replica and across restarts; an operator can also set it with SQL:
//
//	INSERT INTO backi_worker_controls (name, paused) VALUES ('report', true)
//	ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now();
//
// A Store keeps one connection, dialled on first use; Close closes it.
type Store struct {
	cfg    *pgx.ConnConfig
	mu     sync.Mutex
	conn   *pgx.Conn
	schema bool
}

// NewStore returns a store on the database at connString. It connects to
// nothing yet.
func NewStore(connString string) (*Store, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgleader: %w", err)
	}
	return &Store{cfg: cfg}, nil
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS backi_schedule_runs (
	name     text PRIMARY KEY,
	last_run timestamptz NOT NULL,
	term     bigint NOT NULL
)`

const controlSchema = `
CREATE TABLE IF NOT EXISTS backi_worker_controls (
	name       text PRIMARY KEY,
	paused     boolean NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// with runs fn on the store's connection, dialling it (and creating the
// table) when needed. A connection that failed is dropped for the next call.
func (s *Store) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, s.cfg)
		if err != nil {
			return fmt.Errorf("pgleader: store: connect: %w", err)
		}
		s.conn = conn
	}
	if !s.schema {
		for _, t := range []struct{ name, ddl string }{{"backi_schedule_runs", storeSchema}, {"backi_worker_controls", controlSchema}} {
			if err := createTable(ctx, s.conn, t.name, t.ddl); err != nil {
				s.drop(ctx)
				return fmt.Errorf("pgleader: %w", err)
			}
		}
		s.schema = true
	}
	if err := fn(s.conn); err != nil {
		if s.conn.IsClosed() {
			s.drop(ctx)
		}
		return err
	}
	return nil
}

func (s *Store) drop(ctx context.Context) {
	s.conn.Close(context.WithoutCancel(ctx))
	s.conn = nil
}

// LastRun implements backi.ScheduleStore.
func (s *Store) LastRun(ctx context.Context, name string) (time.Time, error) {
	var t time.Time
	err := s.with(ctx, func(c *pgx.Conn) error {
		err := c.QueryRow(ctx, `SELECT last_run FROM backi_schedule_runs WHERE name = $1`, name).Scan(&t)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("pgleader: last run of %q: %w", name, err)
	}
	return t, nil
}

// SaveRun implements backi.ScheduleStore. It records t with the fencing
// token of the term in ctx (backi.TermFrom), and returns ErrStaleTerm when a
// newer term has recorded a run.
func (s *Store) SaveRun(ctx context.Context, name string, t time.Time) error {
	var token int64
	if term, ok := backi.TermFrom(ctx); ok {
		token = int64(term.Token())
	}
	return s.with(ctx, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, `
			INSERT INTO backi_schedule_runs AS r (name, last_run, term) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET last_run = excluded.last_run, term = excluded.term
			WHERE r.term <= excluded.term`, name, t, token)
		if err != nil {
			return fmt.Errorf("pgleader: record the run of %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrStaleTerm
		}
		return nil
	})
}

// Paused implements backi.ControlStore.
func (s *Store) Paused(ctx context.Context, name string) (paused, set bool, err error) {
	err = s.with(ctx, func(c *pgx.Conn) error {
		err := c.QueryRow(ctx, `SELECT paused FROM backi_worker_controls WHERE name = $1`, name).Scan(&paused)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		set = err == nil
		return err
	})
	if err != nil {
		return false, false, fmt.Errorf("pgleader: read whether %q is paused: %w", name, err)
	}
	return paused, set, nil
}

// SetPaused implements backi.ControlStore.
func (s *Store) SetPaused(ctx context.Context, name string, paused bool) error {
	return s.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `
			INSERT INTO backi_worker_controls (name, paused) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()`, name, paused)
		if err != nil {
			return fmt.Errorf("pgleader: record whether %q is paused: %w", name, err)
		}
		return nil
	})
}

// Close closes the store's connection, if it has one.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}
