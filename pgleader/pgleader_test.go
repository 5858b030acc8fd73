package pgleader_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgleader"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	if os.Getenv("PGLEADER_REPLICA") != "" {
		replica()
		return
	}
	leakcheck.Main(m)
}

// dbURL is the test server (see internal/pgtest).
func dbURL(t *testing.T) string { return pgtest.URL(t) }

// replica is one replica of a service with a singleton worker: it prints a
// line when each iteration starts and ends, with its term.
func replica() {
	id, name, url := os.Getenv("PGLEADER_REPLICA"), os.Getenv("PGLEADER_NAME"), os.Getenv("BACKI_PG_URL")
	e, err := pgleader.New(url+"&application_name="+os.Getenv("PGLEADER_APP"), name)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(f string, a ...any) { mu.Lock(); fmt.Printf(f+"\n", a...); mu.Unlock() }
	w := backi.Loop("singleton", func(ctx context.Context) error {
		term, _ := backi.TermFrom(ctx)
		say("start %s %d %d", id, term.Token(), time.Now().UnixNano())
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
		say("end %s %d %d", id, term.Token(), time.Now().UnixNano())
		return nil
	}, backi.WithLeader(e), backi.WithBackoff(backi.ConstantBackoff(100*time.Millisecond)))
	switch os.Getenv("PGLEADER_MODE") {
	case "periodic":
		w = periodicSingleton(id, name, url, e, say)
	case "controlled":
		w = controlledSingleton(id, name, url, e, say)
	}
	h := backi.NewHost(backi.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	h.Add(w)
	say("ready %s", id)
	if err := h.Run(context.Background()); err != nil {
		os.Exit(3)
	}
	os.Exit(0)
}

type record struct {
	kind    string // start, end or ran
	replica string
	term    uint64
	at      time.Time // for ran: the run's due time
	seen    time.Time // when the test read it
}

type cluster struct {
	t       *testing.T
	url     string
	name    string
	mu      sync.Mutex
	records []record
	procs   map[string]*exec.Cmd
	stdin   map[string]io.Writer // of each replica, for the commands of controlledSingleton
	notify  chan struct{}
	mode    string // PGLEADER_MODE of the replicas
}

func newCluster(t *testing.T) *cluster { return newClusterOn(t, dbURL(t)) }

func newClusterOn(t *testing.T, url string) *cluster {
	c := &cluster{t: t, url: url, name: fmt.Sprintf("test-%s-%d", t.Name(), rand.Int64()), procs: map[string]*exec.Cmd{}, stdin: map[string]io.Writer{}, notify: make(chan struct{}, 1)}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.Process.Kill()
			p.Wait()
		}
	})
	return c
}

// app is the application name of replica id's election connection.
func (c *cluster) app(id string) string { return fmt.Sprintf("pgl-%x-%s", c.name[len(c.name)-6:], id) }

func (c *cluster) start(id string) {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	c.stdin[id] = in
	cmd.Env = append(os.Environ(), "PGLEADER_REPLICA="+id, "PGLEADER_NAME="+c.name, "BACKI_PG_URL="+c.url, "PGLEADER_MODE="+c.mode,
		"PGLEADER_APP="+c.app(id))
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[id] = cmd
	ready := make(chan struct{})
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			f := strings.Fields(s.Text())
			if len(f) == 2 && f[0] == "ready" {
				close(ready)
				continue
			}
			if len(f) != 4 {
				continue
			}
			term, _ := strconv.ParseUint(f[2], 10, 64)
			ns, _ := strconv.ParseInt(f[3], 10, 64)
			c.mu.Lock()
			c.records = append(c.records, record{f[0], f[1], term, time.Unix(0, ns), time.Now()})
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}()
	<-ready
}

// waitFor waits up to patience for the first record that matches, and
// returns it; what names what was awaited, for the failure message.
func (c *cluster) waitFor(what string, patience time.Duration, match func(record) bool) record {
	c.t.Helper()
	deadline := time.After(patience)
	for {
		c.mu.Lock()
		for _, r := range c.records {
			if match(r) {
				c.mu.Unlock()
				return r
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			c.t.Fatalf("%s: none within %v", what, patience)
		}
	}
}

// waitRan waits for a periodic run after since, and returns it.
func (c *cluster) waitRan(since time.Time) record {
	c.t.Helper()
	return c.waitFor("a periodic run", 10*time.Second, func(r record) bool {
		return r.kind == "ran" && r.seen.After(since)
	})
}

// waitStart waits up to limit for an iteration of a term above minTerm to
// start after since on a replica other than not, and returns it.
func (c *cluster) waitStart(since time.Time, not string, minTerm uint64, limit time.Duration) record {
	c.t.Helper()
	r := c.waitFor(fmt.Sprintf("an iteration started on a replica other than %q", not), limit+time.Second, func(r record) bool {
		return r.kind == "start" && r.at.After(since) && r.replica != not && r.term > minTerm
	})
	if r.at.Sub(since) > limit {
		c.t.Fatalf("the next leader started %v after, want within %v", r.at.Sub(since), limit)
	}
	return r
}

// lastEnd is when the last iteration that matches ended.
func (c *cluster) lastEnd(match func(record) bool) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, r := range c.records {
		if r.kind == "end" && match(r) && r.at.After(last) {
			last = r.at
		}
	}
	return last
}

func (c *cluster) lastEndOfTerm(term uint64) time.Time {
	return c.lastEnd(func(r record) bool { return r.term == term })
}

func (c *cluster) lastEndOf(replica string) time.Time {
	return c.lastEnd(func(r record) bool { return r.replica == replica })
}

// check asserts that terms only grow and that iterations of different terms
// never overlap.
func (c *cluster) check() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	type span struct {
		term       uint64
		start, end time.Time
		replica    string
	}
	open := map[string]*span{}
	var spans []span
	for _, r := range c.records {
		if r.kind == "start" {
			open[r.replica] = &span{term: r.term, start: r.at, replica: r.replica}
		} else if s := open[r.replica]; s != nil {
			s.end = r.at
			spans = append(spans, *s)
			delete(open, r.replica)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if b.term < a.term {
			c.t.Fatalf("term went back from %d to %d", a.term, b.term)
		}
		if b.term != a.term && b.start.Before(a.end) {
			c.t.Fatalf("terms %d (%s) and %d (%s) overlap: %v–%v and %v–%v", a.term, a.replica, b.term, b.replica, a.start, a.end, b.start, b.end)
		}
	}
	if len(spans) < 10 {
		c.t.Fatalf("only %d iterations recorded", len(spans))
	}
}

func TestOneLeaderAndFailover(t *testing.T) {
	c := newCluster(t)
	began := time.Now()
	for _, id := range []string{"a", "b", "c"} {
		c.start(id)
	}
	first := c.waitStart(began, "", 0, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	for _, r := range c.records {
		if r.replica != first.replica {
			c.mu.Unlock()
			t.Fatalf("replica %s ran while %s led", r.replica, first.replica)
		}
	}
	c.mu.Unlock()

	// kill -9: another replica leads within a second.
	killed := time.Now()
	c.procs[first.replica].Process.Signal(syscall.SIGKILL)
	second := c.waitStart(killed, first.replica, first.term, time.Second)
	t.Logf("after kill -9: %s leads %v later", second.replica, second.at.Sub(killed))

	// A clean stop: the last replica leads within 100 ms of the leader's end.
	c.procs[second.replica].Process.Signal(syscall.SIGTERM)
	if err := c.procs[second.replica].Wait(); err != nil {
		t.Fatalf("the leader's clean stop: %v", err)
	}
	stopped := c.lastEndOf(second.replica)
	third := c.waitStart(stopped, second.replica, second.term, 100*time.Millisecond)
	t.Logf("after a clean stop: %s leads %v later", third.replica, third.at.Sub(stopped))

	// pg_terminate_backend of the leader's connection: its iteration is
	// cancelled within the check window and a leader takes over.
	c.start("d")
	conn, err := pgx.Connect(context.Background(), c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	terminated := time.Now()
	var n int
	if err := conn.QueryRow(context.Background(), `
		SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN backi_leader_terms t ON t.name = $1
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = t.tableoid AND l.objid = t.id::oid AND l.objsubid = 2`, c.name).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d backends: %v", n, err)
	}
	fourth := c.waitStart(terminated, "", third.term, 2*time.Second)
	if end := c.lastEndOfTerm(third.term); end.Sub(terminated) > pgleader.DefaultCheckPeriod+pgleader.DefaultCheckTimeout+100*time.Millisecond {
		t.Fatalf("the old leader's iteration ended %v after its connection was terminated", end.Sub(terminated))
	}
	t.Logf("after pg_terminate_backend: %s leads %v later with term %d", fourth.replica, fourth.at.Sub(terminated), fourth.term)
	time.Sleep(200 * time.Millisecond)
	c.check()
}

// Item 3: a leader paused while its server session ends, and another
// replica takes over, starts no iteration under its old term once it runs
// again: its lease ran out during the pause.
func TestPausedLeaderStartsNothingUnderItsOldTerm(t *testing.T) {
	c := newCluster(t)
	adm := admin(t)
	began := time.Now()
	c.start("a")
	c.start("b")
	first := c.waitStart(began, "", 0, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	proc := c.procs[first.replica].Process
	paused := time.Now()
	proc.Signal(syscall.SIGSTOP)
	if _, err := adm.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, c.app(first.replica)); err != nil {
		proc.Signal(syscall.SIGCONT)
		t.Fatal(err)
	}
	second := c.waitStart(paused, first.replica, first.term, 2*time.Second)
	time.Sleep(time.Until(paused.Add(2 * time.Second)))
	proc.Signal(syscall.SIGCONT)
	time.Sleep(time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.records {
		if r.kind == "start" && r.term == first.term && r.at.After(second.at) {
			t.Fatalf("the paused leader started an iteration of term %d %v after its successor's first", first.term, r.at.Sub(second.at))
		}
	}
	t.Logf("paused %s led term %d; %s led term %d %v after the pause began", first.replica, first.term, second.replica, second.term, second.at.Sub(paused))
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		conn, name string
		opts       []pgleader.Option
		want       string
	}{
		{"postgres://localhost/test", "", nil, "pgleader: the name is empty"},
		{"postgres://%zz", "n", nil, "pgleader: "},
		{"postgres://localhost/test", "n", []pgleader.Option{pgleader.WithNotice(-time.Millisecond)}, "WithNotice(-1ms)"},
		{"postgres://localhost/test", "n", []pgleader.Option{pgleader.WithLogger(nil)}, "WithLogger(nil)"},
		{"postgres://localhost/test", "n", []pgleader.Option{pgleader.WithRetryPeriod(0)}, "WithRetryPeriod(0s)"},
		{"postgres://localhost/test", "n", []pgleader.Option{pgleader.WithCheckPeriod(-time.Second)}, "WithCheckPeriod(-1s)"},
		{"postgres://localhost/test", "n", []pgleader.Option{pgleader.WithCheckTimeout(0)}, "WithCheckTimeout(0s)"},
		{"postgres://localhost/test", "n", []pgleader.Option{nil}, "pgleader: nil Option"},
	} {
		if _, err := pgleader.New(tc.conn, tc.name, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %q) = %v, want %q", tc.conn, tc.name, err, tc.want)
		}
	}
	// An unreachable database: Campaign keeps trying until its context
	// ends, and the session says why, once.
	var log strings.Builder
	var mu sync.Mutex
	e, err := pgleader.New("postgres://postgres@127.0.0.1:1/test?connect_timeout=2", "n",
		pgleader.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := e.Campaign(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Campaign on an unreachable database = %v, want its context's error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(log.String(), "the database failed"); n != 1 || !strings.Contains(log.String(), "connection refused") {
		t.Fatalf("the unreachable database was logged %d times, want once:\n%s", n, log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestServerRestart restarts the server under two replicas: the term ends,
// and one replica leads again once the server is back.
func TestServerRestart(t *testing.T) {
	url, restart := pgtest.Throwaway(t)
	c := newClusterOn(t, url)
	began := time.Now()
	c.start("a")
	c.start("b")
	first := c.waitStart(began, "", 0, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	restarted := time.Now()
	restart()
	back := time.Now()
	next := c.waitStart(restarted, "", first.term, 5*time.Second)
	if end := c.lastEndOfTerm(first.term); end.After(back) {
		t.Fatalf("term %d ran until %v, after the server was back at %v", first.term, end, back)
	}
	t.Logf("restart took %v; %s leads with term %d, %v after the server was back", back.Sub(restarted), next.replica, next.term, next.at.Sub(back))
	// Item 8: campaigns retry about every check period, not after the
	// worker's growing backoff: a replica leads within a retry, the wait
	// after an unclean end and a connect.
	if d := next.at.Sub(back); d > time.Second {
		t.Fatalf("the next leader came %v after the server was back, want within 1s", d)
	}
	time.Sleep(300 * time.Millisecond)
	c.check()
}

// periodicSingleton is a worker that runs every second on the leader and
// records each run it performs, with its due time, in the table test_runs.
func periodicSingleton(id, name, url string, e *pgleader.Elector, say func(string, ...any)) *backi.Worker {
	store, err := pgleader.NewStore(url)
	if err != nil {
		panic(err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		panic(err)
	}
	// The worker is named as its election: the store keys its runs by the
	// worker's name and fences them with the election's terms.
	return backi.Loop(name, func(ctx context.Context) error {
		due, ok := backi.ScheduledFor(ctx)
		if !ok {
			return errors.New("not a scheduled run")
		}
		term, _ := backi.TermFrom(ctx)
		// The write is finished even when the worker is stopping, as an
		// in-flight iteration should: a write cut off by cancellation may
		// land without its iteration knowing, and then be done again.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `INSERT INTO test_runs (name, due, replica, term) VALUES ($1, $2, $3, $4)`,
			name, due, id, int64(term.Token())); err != nil {
			return err
		}
		say("ran %s %d %d", id, term.Token(), due.UnixNano())
		return nil
	}, backi.WithLeader(e), backi.WithSchedule(backi.Every(time.Second)), backi.WithScheduleStore(store))
}

// TestPeriodicSingletonRunsEachRunOnce kills the leader of three replicas of
// a periodic singleton, and restarts it, again and again: every scheduled run
// in the window is performed exactly once.
func TestPeriodicSingletonRunsEachRunOnce(t *testing.T) {
	c := newCluster(t)
	c.mode = "periodic"
	conn, err := pgx.Connect(context.Background(), c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE TABLE IF NOT EXISTS test_runs (name text, due timestamptz, replica text, term bigint)`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		c.start(id)
	}
	since := time.Now()
	for range 4 {
		r := c.waitRan(since)
		// Kill only once the run is recorded: a leader killed between a run
		// and its record leaves the run to be done again (documented; keyed by
		// ScheduledFor, its effects need not repeat).
		for recorded := false; !recorded; {
			var last time.Time
			err := conn.QueryRow(context.Background(), `SELECT last_run FROM backi_schedule_runs WHERE name = $1`, c.name).Scan(&last)
			recorded = err == nil && !last.Before(r.at)
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		since = time.Now()
		c.procs[r.replica].Process.Signal(syscall.SIGKILL)
		c.procs[r.replica].Wait()
		c.start(r.replica)
	}
	c.waitRan(since)
	time.Sleep(2 * time.Second)
	for _, p := range c.procs {
		p.Process.Signal(syscall.SIGTERM)
		p.Wait()
	}
	rows, err := conn.Query(context.Background(), `SELECT due, count(*), string_agg(replica || ':' || term, ',') FROM test_runs WHERE name = $1 GROUP BY due ORDER BY due`, c.name)
	if err != nil {
		t.Fatal(err)
	}
	var dues []time.Time
	for rows.Next() {
		var due time.Time
		var n int
		var who string
		if err := rows.Scan(&due, &n, &who); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("the run due at %v ran %d times: %s", due, n, who)
		}
		dues = append(dues, due)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(dues); i++ {
		if gap := dues[i].Sub(dues[i-1]); gap != time.Second {
			t.Errorf("runs due at %v and %v: %v apart, a run was skipped", dues[i-1], dues[i], gap)
		}
	}
	if len(dues) < 6 {
		t.Fatalf("only %d runs", len(dues))
	}
	t.Logf("%d runs, each once, none skipped, across 4 kills of the leader", len(dues))
}
