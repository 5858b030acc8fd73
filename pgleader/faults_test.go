package pgleader_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgleader"
	"github.com/jackc/pgx/v5"
)

type leaser interface{ Lease() time.Time }

// roundTrip measures a SELECT 1 round trip through url.
func roundTrip(t *testing.T, url string) time.Duration {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	best := time.Hour
	for range 3 {
		start := time.Now()
		if _, err := c.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	return best
}

// Round trips well under the check timeout keep the lease: exchanges are
// paced from the start of the last, so each renews it in time, a win
// included.
func TestLeaseHoldsWithRoundTripsUnderTheCheckTimeout(t *testing.T) {
	p, via := newProxy(t, dbURL(t))
	p.delay.Store(int64(32 * time.Millisecond))
	rt := roundTrip(t, via)
	t.Logf("round trip through the proxy: %v (check timeout %v)", rt, pgleader.DefaultCheckTimeout)
	s := session(t, via)
	term := campaign(t, elector(t, s, unique("slowish")))
	won := time.Now()
	select {
	case <-term.Done():
		t.Fatalf("with every check answering in ~%v, under half the %v check timeout, the term ended %v after it was won",
			rt, pgleader.DefaultCheckTimeout, time.Since(won).Round(time.Millisecond))
	case <-time.After(2 * time.Second):
	}
}

// A round trip of about half the check timeout: a free name is won, since
// even a new connection's first exchange is a single round trip.
func TestCampaignWinsAtHalfTheCheckTimeout(t *testing.T) {
	p, via := newProxy(t, dbURL(t))
	p.delay.Store(int64(40 * time.Millisecond))
	rt := roundTrip(t, via)
	t.Logf("round trip through the proxy: %v (check timeout %v)", rt, pgleader.DefaultCheckTimeout)
	e := elector(t, session(t, via), unique("never"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	term, err := e.Campaign(ctx)
	if err != nil {
		t.Fatalf("round trips of %v, check timeout %v: a free name not won in 5 s: %v", rt, pgleader.DefaultCheckTimeout, err)
	}
	term.Resign(context.Background())
}

// Replicas with different periods: after an unclean end, the successor waits
// out the old leader's lease, which it recorded in its row, not its own.
// Here the server ends a partitioned leader's session (as its keepalives
// would after about 5 s) while its long lease still runs.
func TestSuccessorWaitsTheLastLeadersLease(t *testing.T) {
	url, name := dbURL(t), unique("mixed")
	takeOver(t, url, name, 5*time.Second, cutOff(t, url, name))
}

// cutOff makes a leader of name whose lease is long (check period 3 s,
// timeout 1 s), then cuts it off from the server, which ends its session and
// frees its lock while its lease still runs, and returns its term. A new
// name's first leader waits out its own W first, about 4.2 s here.
func cutOff(t *testing.T, url, name string) backi.Term {
	t.Helper()
	p, via := newProxy(t, url)
	app := unique("longlease")
	a := session(t, withApp(t, via, app), pgleader.WithCheckPeriod(3*time.Second), pgleader.WithCheckTimeout(time.Second))
	term := campaign(t, elector(t, a, name))
	time.Sleep(100 * time.Millisecond) // the first check after the win is done
	p.block()
	t.Cleanup(p.unblock)
	if _, err := admin(t).Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
		t.Fatal(err)
	}
	return term
}

// takeOver campaigns for name on a new session of its own, and fails the
// test unless it leads within limit, and only once old has ended.
func takeOver(t *testing.T, url, name string, limit time.Duration, old backi.Term) backi.Term {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	term, err := elector(t, session(t, url), name).Campaign(ctx)
	if err != nil {
		t.Fatalf("%q was not won within %v: %v", name, limit, err)
	}
	t.Cleanup(func() { term.Resign(context.Background()) })
	select {
	case <-old.Done():
	default:
		t.Fatalf("two leaders of %q: %v leads while %v is open, with a lease until %v from now",
			name, term, old, time.Until(old.(leaser).Lease()).Round(time.Millisecond))
	}
	return term
}

// An elector whose row was deleted (a clean-up, a table made again) makes
// it again, and wins.
func TestDeletedRowIsMadeAgain(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	name := unique("deleted")
	s := session(t, url)
	e := elector(t, s, name)
	term := campaign(t, e)
	if err := term.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec(context.Background(), `DELETE FROM backi_leader_terms WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	t2, err := e.Campaign(ctx)
	if err != nil {
		t.Fatalf("a free name whose row was deleted: Campaign = %v after 3 s", err)
	}
	t2.Resign(context.Background())
}

// The lock is keyed by the row's id: when a leader's row is deleted and
// another session makes it again (a new id, a new lock), the leader's next
// check ends its term, and the new leader waits as after an unclean end, so
// they never lead at once.
func TestDeletedRowNeverGivesTwoLeaders(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	name := unique("deleted2")
	ta := campaign(t, elector(t, session(t, url), name))
	if _, err := adm.Exec(context.Background(), `DELETE FROM backi_leader_terms WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
	takeOver(t, url, name, 3*time.Second, ta)
}

// One session used from many goroutines: campaigns cancelled at random,
// resignations twice and at once, the server ending the session. It fails on
// a race (under -race), a panic or a hang, and every name can be won
// elsewhere after it.
func TestSessionUnderStress(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	app := unique("stress")
	s := session(t, withApp(t, url, app))
	var names []string
	for i := range 6 {
		names = append(names, unique(fmt.Sprintf("stress%d", i)))
	}
	deadline := time.Now().Add(6 * time.Second)
	var wg sync.WaitGroup
	for _, n := range names {
		e := elector(t, s, n)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(40))*time.Millisecond)
				term, err := e.Campaign(ctx)
				cancel()
				if err != nil {
					continue
				}
				time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
				var rw sync.WaitGroup
				for range 3 {
					rw.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(20))*time.Millisecond)
						defer cancel()
						term.Resign(ctx)
					})
				}
				rw.Wait()
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(200+rand.IntN(300)) * time.Millisecond)
			adm.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the stress hung")
	}
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		term, err := elector(t, session(t, url), n).Campaign(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after the stress, %q cannot be won elsewhere: %v", n, err)
		}
		term.Resign(context.Background())
	}
}

// An exchange that carries a resignation and wins a name whose term then
// cannot begin (its row is locked past the check timeout): the resignation
// is answered once, and the session goes on.
func TestResignBesideAFailedBegin(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	ctx := context.Background()
	s := session(t, url, pgleader.WithCheckTimeout(time.Second))
	ta := campaign(t, elector(t, s, unique("a")))
	b, c := unique("b"), unique("c")
	eb, ec := elector(t, s, b), elector(t, s, c)

	if _, err := adm.Exec(ctx, `INSERT INTO backi_leader_terms (name, term, released) VALUES ($1, 0, true)`, b); err != nil {
		t.Fatal(err)
	}
	// b's row is locked: begin's UPDATE waits past the check timeout.
	txB := inTx(t, url, `SELECT FROM backi_leader_terms WHERE name = $1 FOR UPDATE`, b)
	// c's row is being inserted: the exchange that inserts it waits, so that
	// the Resign and b's campaign land in the next one.
	txC := inTx(t, url, `INSERT INTO backi_leader_terms (name, term, released) VALUES ($1, 0, true)`, c)
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	won := make(chan error, 2)
	for _, e := range []*pgleader.Elector{ec, eb} {
		go func() {
			term, err := e.Campaign(cctx)
			if err == nil {
				term.Resign(ctx)
			}
			won <- err
		}()
		time.Sleep(200 * time.Millisecond) // the exchange waits on c's insert
	}
	resigned := make(chan error, 1)
	go func() { resigned <- ta.Resign(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if err := txC.Commit(ctx); err != nil { // the exchange goes on; the next carries the Resign and b
		t.Fatal(err)
	}
	select {
	case <-resigned:
	case <-time.After(3 * time.Second):
		t.Fatal("Resign did not return")
	}
	time.Sleep(1500 * time.Millisecond) // begin's UPDATE of b times out
	txB.Rollback(ctx)
	for range 2 {
		if err := <-won; err != nil {
			t.Fatalf("after a failed begin, a free name was not won: %v", err)
		}
	}
}

// inTx runs sql in a transaction on a connection of its own, left open until
// the test ends or the caller ends it.
func inTx(t *testing.T, url, sql string, args ...any) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
	return tx
}

// The table in its first shape (no id column), with rows, in a schema found
// through search_path: the session migrates it, and leads a name that had a
// row, with its next token, and a new one.
func TestOldTableIsMigrated(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	ctx := context.Background()
	schema := fmt.Sprintf("old_%d", rand.Uint32())
	for _, q := range []string{
		`CREATE SCHEMA ` + schema,
		`CREATE TABLE ` + schema + `.backi_leader_terms (name text PRIMARY KEY, term bigint NOT NULL, released boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO ` + schema + `.backi_leader_terms (name, term, released) VALUES ('old-a', 41, false), ('old-b', 7, true)`,
	} {
		if _, err := adm.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { adm.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`) })
	via := url + "&search_path=" + schema
	s := session(t, via)
	ta := campaign(t, elector(t, s, "old-a"))
	if ta.Token() != 42 {
		t.Fatalf("old-a: token %d, want 42", ta.Token())
	}
	tb := campaign(t, elector(t, s, "old-b"))
	tn := campaign(t, elector(t, s, "new"))
	t.Logf("%v %v %v", ta, tb, tn)
	var ids int
	if err := adm.QueryRow(ctx, `SELECT count(DISTINCT id) FROM `+schema+`.backi_leader_terms WHERE id IS NOT NULL`).Scan(&ids); err != nil || ids != 3 {
		t.Fatalf("%d distinct ids (%v), want 3", ids, err)
	}
}

// Two applications whose search_path finds backi_leader_terms in different
// schemas: their ids overlap, but the locks carry the table's oid, so
// leading public's id-1 name does not hold up the other schema's.
func TestSchemasHaveLockSpacesOfTheirOwn(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	ctx := context.Background()
	var first string
	if err := adm.QueryRow(ctx, `SELECT name FROM public.backi_leader_terms ORDER BY id LIMIT 1`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	var firstID int32
	adm.QueryRow(ctx, `SELECT id FROM public.backi_leader_terms WHERE name = $1`, first).Scan(&firstID)
	campaign(t, elector(t, session(t, url), first))
	schema := fmt.Sprintf("other_%d", rand.Uint32())
	if _, err := adm.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adm.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`) })
	if _, err := adm.Exec(ctx, `CREATE TABLE `+schema+`.backi_leader_terms (name text PRIMARY KEY, term bigint NOT NULL, released boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(), id integer GENERATED BY DEFAULT AS IDENTITY (START WITH `+fmt.Sprint(firstID)+`) UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	e := elector(t, session(t, url+"&search_path="+schema), "unrelated")
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	term, err := e.Campaign(cctx)
	if err != nil {
		t.Fatalf("a free name in schema %s is not won while %q (public, id %d) is led: %v", schema, first, firstID, err)
	}
	term.Resign(ctx)
}
