package pgleader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/backi-go/backi"
	"github.com/jackc/pgx/v5"
)

// Defaults of the periods (see the package documentation).
const (
	DefaultRetryPeriod  = 150 * time.Millisecond
	DefaultCheckPeriod  = 150 * time.Millisecond
	DefaultCheckTimeout = 150 * time.Millisecond
	DefaultNotice       = 150 * time.Millisecond
)

// MaxNameLen is the longest name an elector takes, in bytes.
const MaxNameLen = 200

// An Option configures New and NewSession, which report an invalid one,
// named, before anything connects.
type Option func(*Session) error

// WithRetryPeriod sets how often a replica that does not lead tries again,
// besides at once when another replica releases the lock cleanly. It bounds
// the failover after a crash (see the package documentation). d must be
// positive; the default is DefaultRetryPeriod.
func WithRetryPeriod(d time.Duration) Option {
	return positive("WithRetryPeriod", d, func(s *Session) { s.retry = d })
}

// WithCheckPeriod sets how often the leader checks its connection, and so
// renews its lease. d must be positive; the default is DefaultCheckPeriod.
func WithCheckPeriod(d time.Duration) Option {
	return positive("WithCheckPeriod", d, func(s *Session) { s.checkPeriod = d })
}

// WithCheckTimeout bounds each exchange with the server: a leader whose check
// takes longer gives its terms up. Set it above the round trip to the server
// under load. d must be positive; the default is DefaultCheckTimeout.
func WithCheckTimeout(d time.Duration) Option {
	return positive("WithCheckTimeout", d, func(s *Session) { s.checkTimeout = d })
}

// WithNotice sets how long a deposed leader's iteration may take to notice
// that its term ended (its context is cancelled) and stop, or finish the
// write it began: the next leader waits that much longer before it leads
// (see the package documentation). d must be positive; the default is
// DefaultNotice.
func WithNotice(d time.Duration) Option {
	return positive("WithNotice", d, func(s *Session) { s.notice = d })
}

// WithLogger sets where the session reports trouble with the database: a
// connection that fails or is lost, a check that outlives its timeout. The
// default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Session) error {
		if l == nil {
			return errors.New("pgleader: WithLogger(nil): the logger is nil")
		}
		s.log = l
		return nil
	}
}

// positive returns the option name(d), which sets d, a duration that must be
// positive and at most an hour.
func positive(name string, d time.Duration, set func(*Session)) Option {
	return func(s *Session) error {
		if d <= 0 || d > time.Hour {
			return fmt.Errorf("pgleader: %s(%v): need a positive duration, up to an hour", name, d)
		}
		set(s)
		return nil
	}
}

// Session is one dedicated connection, shared by the electors of several
// names (see Session.Elector). It connects when one of them campaigns, and
// closes the connection when none campaigns or leads.
//
// One goroutine of the session's own uses the connection: every period it
// makes one exchange with the server that tries the locks of all the names
// that campaign and checks the connection for all the terms held, so a
// session with 200 names costs about what one costs. Every exchange has a
// deadline. Terms are bound to the connection their locks were taken on:
// when it fails, or a check does not succeed within the lease, every term on
// it ends.
type Session struct {
	cfg          *pgx.ConnConfig
	retry        time.Duration
	checkPeriod  time.Duration
	checkTimeout time.Duration
	notice       time.Duration
	log          *slog.Logger
	epoch        time.Time // the origin of lease, on the monotonic clock

	mu       sync.Mutex
	electors map[string]*Elector
	resigns  []*term            // resigned terms whose rows and locks the next exchange releases
	unlock   []int32            // ids of locks the next exchange gives up
	running  bool               // the session's goroutine runs
	lapsed   bool               // the lease ran out: the next exchange starts on a new connection
	kicked   bool               // an exchange is wanted now
	wake     context.CancelFunc // ends the goroutine's wait between exchanges, if it waits
	lease    leaseClock

	// Only the session's goroutine uses these (a goroutine that ends has
	// nothing left to do with them but close its connection):
	trouble time.Time // when the database last failed, while it does
	space   int32     // the first key of the election locks: the table's oid (see connect)
}

// NewSession returns a session on the database at connString (a PostgreSQL
// URL or keyword/value string). It connects to nothing yet.
//
// Unless connString sets them, the session's connection has a connect timeout
// of 5 s and asks the server to drop it once the client has been unreachable
// for about 5 s (tcp_keepalives_idle=2, tcp_keepalives_interval=1,
// tcp_keepalives_count=3, tcp_user_timeout=5000), which frees the locks of a
// partitioned leader.
func NewSession(connString string, opts ...Option) (*Session, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgleader: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // one round trip per exchange, even on a new connection
	for k, v := range serverDefaults {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	s := &Session{
		cfg: cfg, retry: DefaultRetryPeriod, checkPeriod: DefaultCheckPeriod, checkTimeout: DefaultCheckTimeout,
		notice: DefaultNotice, log: slog.Default(), epoch: time.Now(),
		electors: map[string]*Elector{},
	}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("pgleader: nil Option")
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.lease.init(s)
	return s, nil
}

// serverDefaults are the connection's server settings unless the connection
// string sets them: the server drops a client it has not heard from in ~5 s.
var serverDefaults = map[string]string{
	"tcp_keepalives_idle":     "2",
	"tcp_keepalives_interval": "1",
	"tcp_keepalives_count":    "3",
	"tcp_user_timeout":        "5000",
	"application_name":        "backi pgleader",
}

// Elector returns the elector of name on this session. A name has one
// elector per session; asking again for the same name is an error.
func (s *Session) Elector(name string) (*Elector, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.electors[name] != nil {
		return nil, fmt.Errorf("pgleader: the session already has an elector for %s", quote(name))
	}
	e := &Elector{s: s, name: name}
	s.electors[name] = e
	return e, nil
}

// checkName reports a name that is empty, too long or not UTF-8 text.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("pgleader: the name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("pgleader: the name %s has %d bytes, over %d", quote(name), len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("pgleader: the name %s is not valid UTF-8", quote(name))
	}
	for _, r := range name {
		if r == 0 {
			return fmt.Errorf("pgleader: the name %s contains a NUL", quote(name))
		}
	}
	return nil
}

// quote quotes a name for an error, at most its first 40 characters.
func quote(name string) string {
	if utf8.RuneCountInString(name) <= 40 {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%.40q…", name)
}

// New returns an elector for name with a session of its own on the database
// at connString. It connects to nothing yet: Campaign connects, and retries
// while the database cannot be reached.
func New(connString, name string, opts ...Option) (*Elector, error) {
	s, err := NewSession(connString, opts...)
	if err != nil {
		return nil, err
	}
	return s.Elector(name)
}

// Elector campaigns for leadership of one name. It implements backi.Elector.
// It holds at most one campaign or term at a time.
type Elector struct {
	s    *Session
	name string

	// Guarded by s.mu:
	id   int32     // the name's row in backi_leader_terms; 0 until known
	want *campaign // the campaign waiting for the lock, if any
	held *term     // the term held, if any
}

// campaign is one call of Campaign, waiting for the session's exchanges.
type campaign struct {
	won  chan struct{} // closed once term is set
	term *term
	wait time.Duration // before leading: the last term ended uncleanly
}

// Campaign blocks until this replica leads, and returns its term; or until
// ctx is done, returning ctx's error. While the database cannot be reached it
// keeps trying, about every check period, and logs the trouble (see
// WithLogger). Calling it while the elector campaigns or leads already is an
// error.
func (e *Elector) Campaign(ctx context.Context) (backi.Term, error) {
	c, err := e.s.enter(e)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.won:
	case <-ctx.Done():
		if t := e.s.withdraw(e, c); t != nil {
			t.Resign(context.WithoutCancel(ctx))
		}
		return nil, ctx.Err()
	}
	t := c.term
	if c.wait > 0 {
		timer := time.NewTimer(c.wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-t.done:
			return nil, fmt.Errorf("pgleader: %s: the term ended while waiting out the last leader", quote(e.name))
		case <-ctx.Done():
			t.Resign(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		}
	}
	e.s.mu.Lock()
	t.led = true
	e.s.mu.Unlock()
	return t, nil
}

// enter registers a campaign of e, starting the session's goroutine if
// needed.
func (s *Session) enter(e *Elector) (*campaign, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.want != nil || e.held != nil {
		return nil, fmt.Errorf("pgleader: %s: the elector campaigns or leads already", quote(e.name))
	}
	c := &campaign{won: make(chan struct{})}
	e.want = c
	if !s.running {
		s.running = true
		go s.run()
	}
	s.kick()
	return c, nil
}

// withdraw ends campaign c of e, whose caller gave up. It returns the term
// if c was won meanwhile, for the caller to resign.
func (s *Session) withdraw(e *Elector, c *campaign) *term {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.want == c {
		e.want = nil
		s.kick()
		return nil
	}
	return c.term
}

// kick asks the session's goroutine for an exchange now. s.mu is held.
func (s *Session) kick() {
	s.kicked = true
	if s.wake != nil {
		s.wake()
	}
}

// term is one spell of leadership, held on one connection of its session.
type term struct {
	e     *Elector
	id    int32
	token uint64
	done  chan struct{} // closed when leadership ends
	ended bool          // done is closed; guarded by the session's mu
	given bool          // Resign was called; guarded by the session's mu
	led   bool          // Campaign returned it; guarded by the session's mu. Only a term
	// that led may be marked released: one given up before it led leaves the
	// last leader's unclean end, and its wait, to the next.

	resigned chan struct{} // closed when the release was sent, or could not be
	err      error         // the release's, set before resigned closes
}

func (t *term) Done() <-chan struct{} { return t.done }
func (t *term) Token() uint64         { return t.token }

// Lease tells until when, on this replica's monotonic clock, the term is
// certain: the start of the session's latest successful check plus
// CheckPeriod + CheckTimeout. backi starts no iteration past it.
func (t *term) Lease() time.Time {
	until := t.e.s.lease.until()
	select {
	case <-t.done:
		return time.Time{}
	default:
		return until
	}
}

// String names the term, as in `term 7 of "nightly-report"`.
func (t *term) String() string { return fmt.Sprintf("term %d of %q", t.token, t.e.name) }

// end closes done once. s.mu is held.
func (t *term) end() {
	if !t.ended {
		t.ended = true
		close(t.done)
	}
}

// Resign ends the term at once and gives its lock up: the session marks the
// term released, so that the next leader need not wait out this one, and
// unlocks. It waits for that until ctx is done, and returns how it went;
// calls after the first wait for the same. Resigning a term that was lost
// does nothing.
func (t *term) Resign(ctx context.Context) error {
	s := t.e.s
	s.mu.Lock()
	switch {
	case t.given:
	case t.e.held != t:
		s.mu.Unlock()
		return nil
	default:
		t.given = true
		t.e.held = nil
		t.end()
		s.resigns = append(s.resigns, t)
		s.kick()
	}
	s.mu.Unlock()
	select {
	case <-t.resigned:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
