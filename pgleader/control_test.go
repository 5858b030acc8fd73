package pgleader_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgleader"
)

// controlledSingleton is the singleton of replica, named as its election,
// following the pause in a Store; each line "pause" or "resume" on standard
// input pauses or resumes it on this replica.
func controlledSingleton(id, name, url string, e *pgleader.Elector, say func(string, ...any)) *backi.Worker {
	store, err := pgleader.NewStore(url)
	if err != nil {
		panic(err)
	}
	w := backi.Loop(name, func(ctx context.Context) error {
		term, _ := backi.TermFrom(ctx)
		say("start %s %d %d", id, term.Token(), time.Now().UnixNano())
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
		say("end %s %d %d", id, term.Token(), time.Now().UnixNano())
		return nil
	}, backi.WithLeader(e), backi.WithControlStore(store), backi.WithBackoff(backi.ConstantBackoff(100*time.Millisecond)))
	go func() {
		s := bufio.NewScanner(os.Stdin)
		for s.Scan() {
			switch s.Text() {
			case "pause":
				w.Pause()
			case "resume":
				w.Resume()
			}
		}
	}()
	return w
}

// send writes a command line to replica id.
func (c *cluster) send(id, line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin[id], line+"\n"); err != nil {
		c.t.Fatalf("to replica %s: %v", id, err)
	}
}

// lastStart is when the last iteration started, on any replica.
func (c *cluster) lastStart() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, r := range c.records {
		if r.kind == "start" && r.at.After(last) {
			last = r.at
		}
	}
	return last
}

// A pause on one replica stops the leader, on another, within a second; the
// next leader after kill -9 of that one stays paused; a resume on a third
// replica starts work again.
func TestPauseHoldsOnEveryReplica(t *testing.T) {
	c := newCluster(t)
	c.mode = "controlled"
	began := time.Now()
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		c.start(id)
	}
	leader := c.waitStart(began, "", 0, 5*time.Second).replica
	var pauser, resumer string
	for _, id := range ids {
		switch {
		case id == leader:
		case pauser == "":
			pauser = id
		default:
			resumer = id
		}
	}

	paused := time.Now()
	c.send(pauser, "pause")
	time.Sleep(2 * time.Second)
	if last := c.lastStart(); last.Sub(paused) > time.Second {
		t.Fatalf("the leader %s started an iteration %v after the pause on %s, want none after 1s", leader, last.Sub(paused), pauser)
	}
	t.Logf("paused on %s: the leader %s started its last iteration %v after", pauser, leader, c.lastStart().Sub(paused))

	c.procs[leader].Process.Signal(syscall.SIGKILL)
	time.Sleep(3 * time.Second) // a new leader is elected within a second
	if last := c.lastStart(); last.Sub(paused) > time.Second {
		t.Fatalf("an iteration started %v after the pause: the next leader did not stay paused", last.Sub(paused))
	}

	resumed := time.Now()
	c.send(resumer, "resume")
	next := c.waitFor("an iteration after the resume", 3*time.Second, func(r record) bool {
		return r.kind == "start" && r.at.After(resumed)
	})
	t.Logf("resumed on %s: %s started %v later", resumer, next.replica, next.at.Sub(resumed))
	if d := next.at.Sub(resumed); d > time.Second {
		t.Fatalf("work started %v after the resume, want within 1s", d)
	}
	// Work goes on long enough for check, which wants ten iterations: the
	// pause may have reached the first leader after one.
	for deadline := time.Now().Add(5 * time.Second); c.endsAfter(resumed) < 10; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d iterations ended in the 5s after the resume, want 10", c.endsAfter(resumed))
		}
	}
	c.check()
}

// endsAfter counts the iterations that ended after since, on any replica.
func (c *cluster) endsAfter(since time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.records {
		if r.kind == "end" && r.at.After(since) {
			n++
		}
	}
	return n
}

func TestStoreKeepsPauses(t *testing.T) {
	s, err := pgleader.NewStore(dbURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := context.Background()
	name := fmt.Sprintf("control-%d", rand.Int64())
	if p, set, err := s.Paused(ctx, name); err != nil || p || set {
		t.Fatalf("a new name: paused %v, set %v, %v", p, set, err)
	}
	for _, want := range []bool{true, false, true} {
		if err := s.SetPaused(ctx, name, want); err != nil {
			t.Fatal(err)
		}
		if p, set, err := s.Paused(ctx, name); err != nil || p != want || !set {
			t.Fatalf("after SetPaused(%v): paused %v, set %v, %v", want, p, set, err)
		}
	}
}
