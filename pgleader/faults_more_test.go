package pgleader_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/pgleader"
)

// A leader A with a long lease is cut off, and the server drops its session
// and lock. B wins the lock and waits out A's recorded wait, but gives the
// term up before it leads. C, who wins next, must still wait out A's lease,
// not B's shorter one: the recorded wait only grows until a clean end.
func TestAnInterimHolderKeepsTheRecordedWait(t *testing.T) {
	url, name := dbURL(t), unique("interim")
	ta := cutOff(t, url, name)
	// B: defaults; its campaign ends while it waits out a's lease.
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	_, err := elector(t, session(t, url), name).Campaign(ctx)
	cancel()
	if err == nil {
		t.Fatal("b led at once after a's unclean end")
	}
	takeOver(t, url, name, 5*time.Second, ta) // C: defaults
}

// A session campaigns for two names: a's row was deleted, and b's lock is
// freed by its leader. The exchange that wins b finds fewer rows than names;
// b's term still gets b's id and keeps its lock, and the session's other
// term lives on.
func TestAMissingRowBesideAWinKeepsTheWinnersTerm(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	nameA, nameB, nameC := unique("gone"), unique("freed"), unique("bystander")

	// X holds b.
	tx := campaign(t, elector(t, session(t, url), nameB))
	// Y holds a with a long check period: it will not notice a's deletion
	// soon. (a's row is made released, so that Y need not wait.)
	if _, err := adm.Exec(context.Background(), `INSERT INTO backi_leader_terms (name, term, released) VALUES ($1, 0, true)`, nameA); err != nil {
		t.Fatal(err)
	}
	campaign(t, elector(t, session(t, url, pgleader.WithCheckPeriod(20*time.Second), pgleader.WithCheckTimeout(5*time.Second)), nameA))

	// S: campaigns for a and b, retries only when notified; it also leads c.
	s := session(t, url, pgleader.WithRetryPeriod(time.Hour))
	tcS := campaign(t, elector(t, s, nameC))
	ea, eb := elector(t, s, nameA), elector(t, s, nameB)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if term, err := ea.Campaign(ctx); err == nil {
			term.Resign(context.Background())
		}
	})
	won := make(chan backi.Term, 1)
	wg.Go(func() {
		term, err := eb.Campaign(ctx)
		if err == nil {
			won <- term
		}
	})
	time.Sleep(500 * time.Millisecond) // both campaigns are known to S, and lose

	if _, err := adm.Exec(context.Background(), `DELETE FROM backi_leader_terms WHERE name = $1`, nameA); err != nil {
		t.Fatal(err)
	}
	if err := tx.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	var tb backi.Term
	select {
	case tb = <-won:
	case <-time.After(3 * time.Second):
		t.Fatal("S did not win b within 3 s of its release")
	}
	defer tb.Resign(context.Background())
	// Nothing is wrong with b or c: both terms should last.
	select {
	case <-tb.Done():
		t.Errorf("b's term %v ended %s after it began, with nothing wrong", tb, "within 1.5 s")
	case <-time.After(1500 * time.Millisecond):
	}
	select {
	case <-tcS.Done():
		t.Errorf("the bystander term %v on the same session ended", tcS)
	default:
	}
}

// The fencing token grows with every term, whichever replica holds it, even
// after the row was deleted and made again: the Store takes the records of
// the only leader.
func TestTheTokenGrowsAfterTheRowIsMadeAgain(t *testing.T) {
	url := dbURL(t)
	adm := admin(t)
	name := unique("fenced")
	e := elector(t, session(t, url), name)
	var last uint64
	for range 3 {
		term := campaign(t, e)
		last = term.Token()
		if err := term.Resign(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	store, err := pgleader.NewStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(context.Background())
	at := time.Now().Truncate(time.Second)
	if err := saveUnder(t, store, last, name, at); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec(context.Background(), `DELETE FROM backi_leader_terms WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
	term := campaign(t, e)
	if term.Token() <= last {
		err := saveUnder(t, store, term.Token(), name, at.Add(time.Minute))
		t.Errorf("after the row was made again the token went from %d back to %d; the only leader's SaveRun: %v", last, term.Token(), err)
	}
}

// goexitHandler is a log handler that calls runtime.Goexit on the records
// at or above level.
type goexitHandler struct{ level slog.Level }

func (h goexitHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h goexitHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= h.level {
		runtime.Goexit()
	}
	return nil
}
func (h goexitHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h goexitHandler) WithGroup(string) slog.Handler      { return h }

// A log handler that calls runtime.Goexit on the session's goroutine, when
// the server ends the session: another goroutine takes over, the names can
// be won again, Resign returns, and no goroutine is left behind.
func TestGoexitInTheLoggerKeepsTheSessionAlive(t *testing.T) {
	leakcheck.Test(t)
	url := dbURL(t)
	adm := admin(t)
	app := unique("goexit")
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelInfo} {
		t.Logf("level %v", level)
		s := session(t, withApp(t, url, app), pgleader.WithLogger(slog.New(goexitHandler{level})))
		name := unique("goexit")
		e := elector(t, s, name)
		term := campaign(t, e)
		if _, err := adm.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
			t.Fatal(err)
		}
		ended(t, term, 2*time.Second, "the server ended the session")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t2, err := e.Campaign(ctx)
		cancel()
		if err != nil {
			t.Fatalf("level %v: Campaign after the Goexit: %v", level, err)
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := t2.Resign(rctx); err != nil {
			t.Errorf("level %v: Resign after the Goexit: %v", level, err)
		}
		rcancel()
	}
	time.Sleep(500 * time.Millisecond) // the sessions' goroutines end
}

// A row renamed between the exchange that won its lock and the update that
// begins the term: the session goes on, and the process survives (the case
// runs in a child process, so that a crash fails the test).
func TestARenamedRowDoesNotCrashTheProcess(t *testing.T) {
	if os.Getenv("PGLEADER_RENAME_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestARenamedRowDoesNotCrashTheProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "PGLEADER_RENAME_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the child failed (%v):\n%s", err, lastLines(string(out), 25))
		}
		return
	}
	url := dbURL(t)
	adm := admin(t)
	name := unique("renamed")
	s := session(t, url, pgleader.WithCheckTimeout(2*time.Second))
	e := elector(t, s, name)
	if err := campaign(t, e).Resign(context.Background()); err != nil { // the row is made, its id known
		t.Fatal(err)
	}
	tx := inTx(t, url, `UPDATE backi_leader_terms SET name = name || '-x' WHERE name = $1`, name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		term, err := e.Campaign(ctx)
		if err == nil {
			term.Resign(context.Background())
		}
		res <- err
	}()
	time.Sleep(400 * time.Millisecond) // begin's UPDATE waits for the row
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-res
	_ = adm
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Resign from many goroutines at once, beside the term's end by the server
// and new campaigns: every call returns, with the same result, and the name
// is free after.
func TestManyResignsAtOnce(t *testing.T) {
	url := dbURL(t)
	s := session(t, url)
	for round := range 5 {
		name := unique("manyresign")
		term := campaign(t, elector(t, s, name))
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				errs <- term.Resign(ctx)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: Resign: %v", round, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t2, err := elector(t, session(t, url), name).Campaign(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: the name was not free after the resignations: %v", round, err)
		}
		t2.Resign(context.Background())
	}
}
