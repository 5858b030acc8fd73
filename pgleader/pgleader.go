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

// An Option configures New and NewSession, which report an invalid one,
// named, before anything connects.
type Option func(*Session) error

// WithRetryPeriod sets how often a replica that does not lead tries again.
// d must be positive; the default is DefaultRetryPeriod.
func WithRetryPeriod(d time.Duration) Option {
	return positive("WithRetryPeriod", d, func(s *Session) { s.retry = d })
}

// WithCheckPeriod sets how often the leader checks its connection. d must be
// positive; the default is DefaultCheckPeriod.
func WithCheckPeriod(d time.Duration) Option {
	return positive("WithCheckPeriod", d, func(s *Session) { s.checkPeriod = d })
}

// WithCheckTimeout bounds each check. d must be positive and not exceed the
// check period; the default is DefaultCheckTimeout.
func WithCheckTimeout(d time.Duration) Option {
	return positive("WithCheckTimeout", d, func(s *Session) { s.checkTimeout = d })
}

// positive returns the option name(d), which sets d, a duration that must be
// positive.
func positive(name string, d time.Duration, set func(*Session)) Option {
	return func(s *Session) error {
		if d <= 0 {
			return fmt.Errorf("pgleader: %s(%v): need a positive duration", name, d)
		}
		set(s)
		return nil
	}
}

// Session is one dedicated connection, shared by the electors of several
// names (see Session.Elector). It connects when one of them campaigns, checks
// the connection while any campaigns or leads, and closes it when none does.
// If a check fails, every term held on it ends at once.
type Session struct {
	cfg          *pgx.ConnConfig
	retry        time.Duration
	checkPeriod  time.Duration
	checkTimeout time.Duration

	mu      sync.Mutex // serialises the use of conn and guards what follows
	conn    *pgx.Conn
	users   int // campaigns in progress and terms held
	terms   map[*term]bool
	stop    chan struct{} // closes the running check
	checked chan struct{} // closed when that check has returned
}

// NewSession returns a session on the database at connString (a PostgreSQL
// URL or keyword/value string). It connects to nothing yet.
func NewSession(connString string, opts ...Option) (*Session, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgleader: %w", err)
	}
	s := &Session{cfg: cfg, retry: DefaultRetryPeriod, checkPeriod: DefaultCheckPeriod, checkTimeout: DefaultCheckTimeout, terms: map[*term]bool{}}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("pgleader: nil Option")
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.checkTimeout > s.checkPeriod {
		return nil, fmt.Errorf("pgleader: WithCheckTimeout(%v): need a timeout no longer than the check period (%v)", s.checkTimeout, s.checkPeriod)
	}
	return s, nil
}

// Elector returns the elector of name on this session.
func (s *Session) Elector(name string) (*Elector, error) {
	if name == "" {
		return nil, errors.New("pgleader: the name is empty")
	}
	return &Elector{s: s, name: name}, nil
}

// Elector campaigns for leadership of one name. It implements backi.Elector.
type Elector struct {
	s    *Session
	name string
}

// New returns an elector for name with a session of its own on the database
// at connString. It connects to nothing yet: an unreachable database is
// reported by Campaign.
func New(connString, name string, opts ...Option) (*Elector, error) {
	if name == "" {
		return nil, errors.New("pgleader: the name is empty")
	}
	s, err := NewSession(connString, opts...)
	if err != nil {
		return nil, err
	}
	return s.Elector(name)
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
	s := e.s
	if err := s.join(ctx); err != nil {
		return nil, fmt.Errorf("pgleader: %q: %w", e.name, err)
	}
	held := false
	defer func() {
		if !held {
			s.leave()
		}
	}()
	for {
		var locked bool
		err := s.use(func(conn *pgx.Conn) error {
			return conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, e.name).Scan(&locked)
		})
		if err != nil {
			return nil, fmt.Errorf("pgleader: %q: try lock: %w", e.name, err)
		}
		if locked {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.retry):
		}
	}
	var token int64
	var released *bool
	err := s.use(func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `
			INSERT INTO backi_leader_terms AS t (name, term) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET term = t.term + 1, released = false, updated_at = now()
			RETURNING term, (SELECT released FROM backi_leader_terms WHERE name = $1)`, e.name).Scan(&token, &released)
	})
	t := &term{e: e, token: uint64(token), done: make(chan struct{})}
	if err == nil {
		err = s.hold(t)
	}
	if err != nil {
		// The lock may be held on a connection that lives on: let it go.
		s.use(func(conn *pgx.Conn) error {
			_, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, e.name)
			return err
		})
		return nil, fmt.Errorf("pgleader: %q: new term: %w", e.name, err)
	}
	held = true
	if released != nil && !*released {
		// The last leader ended uncleanly: wait until it must have given up.
		select {
		case <-time.After(s.checkPeriod + s.checkTimeout):
		case <-t.done:
			return nil, fmt.Errorf("pgleader: %q: lost the connection while waiting out the last leader", e.name)
		case <-ctx.Done():
			t.Resign(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		}
	}
	return t, nil
}

var errClosed = errors.New("the connection was lost")

// createTable runs ddl, a CREATE TABLE IF NOT EXISTS of table, under a
// transaction lock, so that replicas starting together do not race to create
// it.
func createTable(ctx context.Context, conn *pgx.Conn, table, ddl string) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, table); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", table, err)
	}
	return nil
}

// join counts a campaign in, connecting (and creating the table) if needed.
func (s *Session) join(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, s.cfg)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		err = createTable(ctx, conn, "backi_leader_terms", schema)
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return err
		}
		s.conn = conn
		s.stop, s.checked = make(chan struct{}), make(chan struct{})
		go s.check(conn, s.stop, s.checked)
	}
	s.users++
	return nil
}

// use runs fn on the connection, if it is still there.
func (s *Session) use(fn func(*pgx.Conn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return errClosed
	}
	return fn(s.conn)
}

// hold records a term, unless the connection it was won on is gone.
func (s *Session) hold(t *term) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return errClosed
	}
	s.terms[t] = true
	return nil
}

// leave counts a campaign or a term out; the last one closes the connection.
func (s *Session) leave() {
	s.mu.Lock()
	s.users--
	if s.users > 0 || s.conn == nil {
		s.mu.Unlock()
		return
	}
	conn, stop, checked := s.conn, s.stop, s.checked
	s.conn = nil
	s.mu.Unlock()
	close(stop)
	<-checked
	ctx, cancel := context.WithTimeout(context.Background(), s.checkTimeout)
	defer cancel()
	conn.Close(ctx)
}

// check runs while conn is the session's: the first failed check ends every
// term held on it and closes it, which makes the server release the locks.
func (s *Session) check(conn *pgx.Conn, stop <-chan struct{}, checked chan<- struct{}) {
	defer close(checked)
	tick := time.NewTicker(s.checkPeriod)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		if s.conn != conn {
			s.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.checkTimeout)
		_, err := conn.Exec(ctx, `SELECT 1`)
		cancel()
		if err != nil {
			for t := range s.terms {
				t.end()
				s.users--
			}
			clear(s.terms)
			s.conn = nil
			s.mu.Unlock()
			closeCtx, cancel := context.WithTimeout(context.Background(), s.checkTimeout)
			conn.Close(closeCtx)
			cancel()
			return
		}
		s.mu.Unlock()
	}
}

// term is one spell of leadership, held on its session's connection.
type term struct {
	e      *Elector
	token  uint64
	done   chan struct{} // closed when leadership ends
	once   sync.Once     // closes done
	resign sync.Once
	err    error // Resign's
}

func (t *term) Done() <-chan struct{} { return t.done }
func (t *term) Token() uint64         { return t.token }
func (t *term) end()                  { t.once.Do(func() { close(t.done) }) }

// String names the term, as in `term 7 of "nightly-report"`.
func (t *term) String() string { return fmt.Sprintf("term %d of %q", t.token, t.e.name) }

// Resign ends the term at once: it marks the row released and unlocks, and
// the session closes its connection if nothing else uses it. Calls after the
// first return its result.
func (t *term) Resign(ctx context.Context) error {
	t.resign.Do(func() {
		s := t.e.s
		s.mu.Lock()
		if !s.terms[t] { // already lost, and counted out
			s.mu.Unlock()
			return
		}
		delete(s.terms, t)
		t.end()
		_, err := s.conn.Exec(ctx, `UPDATE backi_leader_terms SET released = true, updated_at = now() WHERE name = $1 AND term = $2`, t.e.name, int64(t.token))
		if err == nil {
			_, err = s.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, t.e.name)
		}
		t.err = err
		s.mu.Unlock()
		s.leave()
	})
	return t.err
}
