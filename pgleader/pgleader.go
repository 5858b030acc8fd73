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

// Defaults of the periods (see the package documentation).
const (
	DefaultRetryPeriod  = 50 * time.Millisecond
	DefaultCheckPeriod  = 250 * time.Millisecond
	DefaultCheckTimeout = 250 * time.Millisecond
)

// An Option configures New.
type Option func(*Elector)

// WithRetryPeriod sets how often a replica that does not lead tries again.
func WithRetryPeriod(d time.Duration) Option { return func(e *Elector) { e.retry = d } }

// WithCheckPeriod sets how often the leader checks its connection.
func WithCheckPeriod(d time.Duration) Option { return func(e *Elector) { e.checkPeriod = d } }

// WithCheckTimeout bounds each check; it must not exceed the check period.
func WithCheckTimeout(d time.Duration) Option { return func(e *Elector) { e.checkTimeout = d } }

// Elector campaigns for leadership of one name. It implements backi.Elector.
// It starts nothing until Campaign is called.
type Elector struct {
	cfg          *pgx.ConnConfig
	name         string
	retry        time.Duration
	checkPeriod  time.Duration
	checkTimeout time.Duration
}

// New returns an elector for name on the database at connString (a
// PostgreSQL URL or keyword/value string). It connects to nothing yet: an
// unreachable database is reported by Campaign.
func New(connString, name string, opts ...Option) (*Elector, error) {
	if name == "" {
		return nil, errors.New("pgleader: the name is empty")
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgleader: %w", err)
	}
	e := &Elector{cfg: cfg, name: name, retry: DefaultRetryPeriod, checkPeriod: DefaultCheckPeriod, checkTimeout: DefaultCheckTimeout}
	for _, o := range opts {
		o(e)
	}
	switch {
	case e.retry <= 0:
		return nil, fmt.Errorf("pgleader: WithRetryPeriod(%v): need a positive period", e.retry)
	case e.checkPeriod <= 0:
		return nil, fmt.Errorf("pgleader: WithCheckPeriod(%v): need a positive period", e.checkPeriod)
	case e.checkTimeout <= 0 || e.checkTimeout > e.checkPeriod:
		return nil, fmt.Errorf("pgleader: WithCheckTimeout(%v): need 0 < timeout <= the check period (%v)", e.checkTimeout, e.checkPeriod)
	}
	return e, nil
}

const schema = `
CREATE TABLE IF NOT EXISTS backi_leader_terms (
	name       text PRIMARY KEY,
	term       bigint NOT NULL,
	released   boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// Campaign blocks until this replica leads, and returns its term; or until
// ctx is done, returning ctx's error; or until the database fails, returning
// why.
func (e *Elector) Campaign(ctx context.Context) (backi.Term, error) {
	conn, err := pgx.ConnectConfig(ctx, e.cfg)
	if err != nil {
		return nil, fmt.Errorf("pgleader: %q: connect: %w", e.name, err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := e.ensureSchema(ctx, conn); err != nil {
		return nil, err
	}
	for {
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, e.name).Scan(&locked); err != nil {
			return nil, fmt.Errorf("pgleader: %q: try lock: %w", e.name, err)
		}
		if locked {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(e.retry):
		}
	}
	var token int64
	var released *bool
	err = conn.QueryRow(ctx, `
		INSERT INTO backi_leader_terms AS t (name, term) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET term = t.term + 1, released = false, updated_at = now()
		RETURNING term, (SELECT released FROM backi_leader_terms WHERE name = $1)`, e.name).Scan(&token, &released)
	if err != nil {
		return nil, fmt.Errorf("pgleader: %q: new term: %w", e.name, err)
	}
	t := &term{e: e, conn: conn, token: uint64(token), done: make(chan struct{}), stop: make(chan struct{}), checked: make(chan struct{})}
	go t.check()
	ok = true
	if released != nil && !*released {
		// The last leader ended uncleanly: wait until it must have given up.
		select {
		case <-time.After(e.checkPeriod + e.checkTimeout):
		case <-t.done:
			return nil, fmt.Errorf("pgleader: %q: lost the lock while waiting out the last leader", e.name)
		case <-ctx.Done():
			t.Resign(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		}
	}
	return t, nil
}

// ensureSchema creates the table if it is missing. Replicas starting together
// take a transaction lock so that they do not race to create it.
func (e *Elector) ensureSchema(ctx context.Context, conn *pgx.Conn) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('backi_leader_terms', 0))`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgleader: create backi_leader_terms: %w", err)
	}
	return nil
}

// term is one spell of leadership, held on its own connection.
type term struct {
	e       *Elector
	conn    *pgx.Conn
	token   uint64
	done    chan struct{} // closed when leadership ends
	stop    chan struct{} // closed by Resign
	checked chan struct{} // closed when check has returned
	once    sync.Once     // closes done
	resign  sync.Once
	err     error // Resign's
}

func (t *term) Done() <-chan struct{} { return t.done }
func (t *term) Token() uint64         { return t.token }

// check runs while the term lasts: the first failed check ends it.
func (t *term) check() {
	defer close(t.checked)
	tick := time.NewTicker(t.e.checkPeriod)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), t.e.checkTimeout)
		_, err := t.conn.Exec(ctx, `SELECT 1`)
		cancel()
		if err != nil {
			t.end()
			closeCtx, cancel := context.WithTimeout(context.Background(), t.e.checkTimeout)
			t.conn.Close(closeCtx)
			cancel()
			return
		}
	}
}

func (t *term) end() { t.once.Do(func() { close(t.done) }) }

// Resign ends the term at once: it marks the row released, unlocks and
// closes the connection. Calls after the first return its result.
func (t *term) Resign(ctx context.Context) error {
	t.resign.Do(func() {
		close(t.stop)
		<-t.checked
		select {
		case <-t.done: // already lost; the connection is closed
			return
		default:
		}
		t.end()
		_, err := t.conn.Exec(ctx, `UPDATE backi_leader_terms SET released = true, updated_at = now() WHERE name = $1 AND term = $2`, t.e.name, int64(t.token))
		if err == nil {
			_, err = t.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, t.e.name)
		}
		t.err = errors.Join(err, t.conn.Close(ctx))
	})
	return t.err
}
