package pgleader_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgleader"
	"github.com/jackc/pgx/v5"
)

// lease is how long a leader trusts its terms without a successful check,
// with the defaults.
const lease = pgleader.DefaultCheckPeriod + pgleader.DefaultCheckTimeout

// unique returns a name no other test uses.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Int64()) }

// withApp returns dbURL with the application name set, for finding the
// session's server process.
func withApp(t *testing.T, dbURL, app string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

func admin(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// campaign campaigns for e within 5 s, and fails the test otherwise.
func campaign(t *testing.T, e *pgleader.Elector) backi.Term {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	term, err := e.Campaign(ctx)
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	t.Cleanup(func() { term.Resign(context.Background()) })
	return term
}

// elector returns the elector of name on s.
func elector(t *testing.T, s *pgleader.Session, name string) *pgleader.Elector {
	t.Helper()
	e, err := s.Elector(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func session(t *testing.T, url string, opts ...pgleader.Option) *pgleader.Session {
	t.Helper()
	s, err := pgleader.NewSession(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ended waits up to limit for term to end, and fails the test otherwise.
func ended(t *testing.T, term backi.Term, limit time.Duration, what string) {
	t.Helper()
	select {
	case <-term.Done():
	case <-time.After(limit):
		t.Fatalf("%s: the term did not end within %v", what, limit)
	}
}

func TestNamesAreChecked(t *testing.T) {
	url := dbURL(t)
	for _, tc := range []struct{ name, want string }{
		{"", "empty"},
		{strings.Repeat("x", 100_000), "100000 bytes, over 200"},
		{"a\x00b", "NUL"},
		{"bad\xffutf8", "not valid UTF-8"},
	} {
		_, err := pgleader.New(url, tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%.20q) = %v, want an error saying %q", tc.name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 150 {
			t.Errorf("the error quotes too much of the name: %d bytes", len(err.Error()))
		}
	}
	s := session(t, url)
	elector(t, s, "twice")
	if _, err := s.Elector("twice"); err == nil {
		t.Error("a second elector of one name on one session: no error")
	}
}

func TestOneCampaignAtATimePerElector(t *testing.T) {
	s := session(t, dbURL(t))
	e := elector(t, s, unique("once"))
	campaign(t, e)
	if _, err := e.Campaign(context.Background()); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("Campaign while leading = %v, want an error", err)
	}
}

// The locks that guard the creation of the tables live apart from the
// election's: leading a name equal to a table's does not hold up others.
func TestTableLocksDoNotBlockElections(t *testing.T) {
	url := dbURL(t)
	a := session(t, url)
	campaign(t, elector(t, a, "backi_leader_terms"))
	campaign(t, elector(t, a, "backi_schedule_runs"))

	b := session(t, url) // a new connection creates the table again, under its lock
	campaign(t, elector(t, b, unique("other")))
	store, err := pgleader.NewStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := store.LastRun(ctx, unique("run")); err != nil {
		t.Fatalf("a new store beside a leader of %q: %v", "backi_schedule_runs", err)
	}
}

// leadAndContest returns a session through a proxy that leads one name,
// with its term, and a name that another session holds.
func leadAndContest(t *testing.T, opts ...pgleader.Option) (p *proxy, s *pgleader.Session, term backi.Term, held string) {
	url := dbURL(t)
	p, via := newProxy(t, url)
	held = unique("held")
	campaign(t, elector(t, session(t, url), held))
	s = session(t, via, opts...)
	return p, s, campaign(t, elector(t, s, unique("led"))), held
}

// Item 1: a partitioned session leader gives its terms up within the lease,
// although another of its names campaigns.
func TestPartitionedSessionLeaderStepsDown(t *testing.T) {
	p, s, term, held := leadAndContest(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go elector(t, s, held).Campaign(ctx) // tries for the lock every retry period
	time.Sleep(200 * time.Millisecond)

	p.block()
	defer p.unblock()
	cut := time.Now()
	ended(t, term, lease+250*time.Millisecond, "partitioned")
	if lease := term.(interface{ Lease() time.Time }).Lease(); !lease.Before(time.Now()) {
		t.Fatalf("a lost term's lease runs until %v", lease)
	}
	t.Logf("the term ended %v after the partition", time.Since(cut))
}

// Item 7: cancelling one campaign on a session never ends another name's
// term on it.
func TestCancellingACampaignKeepsTheOtherTerms(t *testing.T) {
	p, s, term, held := leadAndContest(t, pgleader.WithCheckTimeout(500*time.Millisecond))
	p.delay.Store(int64(50 * time.Millisecond)) // 100 ms a round trip: cancels land mid-query
	eb := elector(t, s, held)
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(10+rand.IntN(150))*time.Millisecond)
		if _, err := eb.Campaign(ctx); err == nil {
			t.Fatalf("campaign %d for a name held elsewhere succeeded", i)
		}
		cancel()
	}
	time.Sleep(lease)
	select {
	case <-term.Done():
		t.Fatal("cancelling campaigns ended another name's term")
	default:
	}
}

// Item 2: a term lives on the connection that took its lock; after that
// connection is lost, every term is won again on the new one.
func TestTermsAreBoundToTheirConnection(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	app := unique("bound")
	a, b := unique("a"), unique("b")
	other := session(t, url)
	otherB := campaign(t, elector(t, other, b))

	s := session(t, withApp(t, url, app))
	ea, eb := elector(t, s, a), elector(t, s, b)
	ta := campaign(t, ea)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	won := make(chan backi.Term, 1)
	go func() {
		if t, err := eb.Campaign(ctx); err == nil {
			won <- t
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := adm.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
		t.Fatal(err)
	}
	ended(t, ta, lease+200*time.Millisecond, "connection terminated")
	otherB.Resign(context.Background())
	var tb backi.Term
	select {
	case tb = <-won:
		defer tb.Resign(context.Background())
	case <-time.After(5 * time.Second):
		t.Fatal("b was not won after its holder resigned")
	}
	ta2 := campaign(t, ea)
	if ta2.Token() <= ta.Token() {
		t.Fatalf("token %d after %d", ta2.Token(), ta.Token())
	}
	var holders, pids int
	err := adm.QueryRow(context.Background(), `
		SELECT count(DISTINCT l.pid), count(DISTINCT a.pid) FROM pg_locks l
		JOIN backi_leader_terms t ON l.locktype = 'advisory' AND l.granted AND l.classid = t.tableoid AND l.objid = t.id::oid AND l.objsubid = 2
		LEFT JOIN pg_stat_activity a ON a.pid = l.pid AND a.application_name = $3
		WHERE t.name IN ($1, $2)`, a, b, app).Scan(&holders, &pids)
	if err != nil {
		t.Fatal(err)
	}
	if holders != 1 || pids != 1 {
		t.Fatalf("the locks of both terms are held by %d server processes, %d of them the session's; want its one", holders, pids)
	}
}

// A server that takes connections and never answers holds a campaign no
// longer than its context.
func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	e, err := pgleader.New("postgres://nobody@"+ln.Addr().String()+"/none?sslmode=disable&connect_timeout=1", unique("silent"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := e.Campaign(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Campaign = %v, want its context's error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Campaign returned %v after its context ended", d)
	}
}

// Item 9: 200 names on one session share one connection, and fail over
// together within the bound of one.
func TestTwoHundredNamesOnOneSession(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	appA, appB := unique("many-a"), unique("many-b")
	a, b := session(t, withApp(t, url, appA)), session(t, withApp(t, url, appB))
	prefix := unique("many")
	terms := make([]backi.Term, 200)
	var wg sync.WaitGroup
	for i := range terms {
		e := elector(t, a, fmt.Sprintf("%s-%d", prefix, i))
		wg.Go(func() { // new names: each first leader waits, all at once
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if terms[i], err = e.Campaign(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, term := range terms {
		t.Cleanup(func() { term.Resign(context.Background()) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	won := make(chan backi.Term, 200)
	for i := range 200 {
		e := elector(t, b, fmt.Sprintf("%s-%d", prefix, i))
		go func() {
			if term, err := e.Campaign(ctx); err == nil {
				won <- term
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for _, app := range []string{appA, appB} {
		var n int
		if err := adm.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s uses %d connections (%v), want 1", app, n, err)
		}
	}
	killed := time.Now()
	if _, err := adm.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, appA); err != nil {
		t.Fatal(err)
	}
	bound := pgleader.DefaultRetryPeriod + time.Duration(1.01*float64(lease+pgleader.DefaultNotice)) + time.Second
	for i := range 200 {
		select {
		case term := <-won:
			defer term.Resign(context.Background())
		case <-time.After(time.Until(killed.Add(bound))):
			t.Fatalf("%d of 200 names failed over within %v", i, bound)
		}
	}
	for _, term := range terms {
		ended(t, term, time.Second, "terminated")
	}
	t.Logf("200 names failed over in %v", time.Since(killed))
}

// Item 6: when the server answers slower than the check timeout, the
// session says which option to raise, and with it raised, leads.
func TestSlowServerNamesTheCheckTimeout(t *testing.T) {
	p, via := newProxy(t, dbURL(t))
	var log strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))
	s := session(t, via, pgleader.WithLogger(logger))
	held := campaign(t, elector(t, s, unique("held"))) // connected before the delay
	e := elector(t, s, unique("slow"))
	p.delay.Store(int64(100 * time.Millisecond)) // 200 ms a round trip, over the 150 ms timeout
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if term, err := e.Campaign(ctx); err == nil {
		term.Resign(context.Background())
		t.Fatal("led through a server slower than the check timeout")
	}
	ended(t, held, time.Second, "slow server")
	mu.Lock()
	said := log.String()
	mu.Unlock()
	if !strings.Contains(said, "WithCheckTimeout(150ms)") {
		t.Fatalf("the log does not name the option to raise:\n%s", said)
	}

	patient := session(t, via, pgleader.WithCheckTimeout(time.Second), pgleader.WithLogger(logger))
	campaign(t, elector(t, patient, unique("patient")))
}

// A session that leads one name and campaigns for another checks its terms
// every check period, however long its retry period.
func TestLeadingWhileCampaigningKeepsTheLease(t *testing.T) {
	url := dbURL(t)
	held := unique("held")
	campaign(t, elector(t, session(t, url), held))
	slow := session(t, url, pgleader.WithRetryPeriod(time.Second))
	term := campaign(t, elector(t, slow, unique("led")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go elector(t, slow, held).Campaign(ctx)
	select {
	case <-term.Done():
		t.Fatal("the term ended while its session campaigned for another name")
	case <-time.After(2 * time.Second):
	}
}

// A term won after an unclean end and given up before it led (its campaign
// ended during the wait) leaves the wait to the next leader: the row is not
// marked released.
func TestATermGivenUpBeforeItLedKeepsTheWait(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	app, name := unique("unclean"), unique("waited")
	campaign(t, elector(t, session(t, withApp(t, url, app)), name))
	ended := time.Now()
	if _, err := adm.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	if _, err := elector(t, session(t, url), name).Campaign(ctx); err == nil {
		t.Fatal("led before waiting out the last leader")
	}
	campaign(t, elector(t, session(t, url), name))
	if d, min := time.Since(ended), lease+pgleader.DefaultNotice; d < min {
		t.Fatalf("the next leader led %v after the unclean end, within the last leader's lease and notice (%v)", d, min)
	}
}
