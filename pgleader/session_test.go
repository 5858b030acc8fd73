package pgleader_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/backi-go/backi/pgleader"
	"github.com/jackc/pgx/v5"
)

// TestSessionSharesOneConnection elects two names on one session: both terms
// live on one server session, and when that session is terminated both end
// within the check window; campaigning again reconnects.
func TestSessionSharesOneConnection(t *testing.T) {
	url := dbURL(t)
	s, err := pgleader.NewSession(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base := fmt.Sprintf("session-%d", rand.Int64())
	a, _ := s.Elector(base + "-a")
	b, _ := s.Elector(base + "-b")
	ta, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(ta), fmt.Sprintf("term %d of %q", ta.Token(), base+"-a"); got != want {
		t.Errorf("a term prints as %s, want %s", got, want)
	}

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var pids []int32
	rows, err := admin.Query(ctx, `
		SELECT DISTINCT l.pid FROM pg_locks l JOIN backi_leader_terms t ON t.name IN ($1, $2)
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = t.tableoid AND l.objid = t.id::oid AND l.objsubid = 2`, base+"-a", base+"-b")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid int32
		rows.Scan(&pid)
		pids = append(pids, pid)
	}
	if len(pids) != 1 {
		t.Fatalf("the two names are held by %d server sessions, want one", len(pids))
	}

	terminated := time.Now()
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pids[0]); err != nil {
		t.Fatal(err)
	}
	limit := pgleader.DefaultCheckPeriod + pgleader.DefaultCheckTimeout + 100*time.Millisecond
	for _, term := range []interface{ Done() <-chan struct{} }{ta, tb} {
		select {
		case <-term.Done():
		case <-time.After(limit):
			t.Fatalf("a term outlived its terminated session by %v", time.Since(terminated))
		}
	}
	// Resigning a lost term is harmless; campaigning again reconnects.
	if err := ta.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	tb.Resign(ctx)
	ta2, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ta2.Token() <= ta.Token() {
		t.Fatalf("token %d after %d", ta2.Token(), ta.Token())
	}
	if err := ta2.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
