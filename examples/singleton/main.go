// Command singleton shows a worker that runs on one replica at a time,
// elected on PostgreSQL. Start three replicas in one go and watch exactly one
// of them log its work; kill that one (kill -9 its pid, printed at start) and
// watch another take over:
//
//	go run ./examples/singleton -replicas 3
//
// or start replicas yourself, in three terminals:
//
//	go run ./examples/singleton -id a
//
// The database is $DATABASE_URL, or the local server.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgleader"
)

func main() {
	id := flag.String("id", "a", "this replica's name")
	replicas := flag.Int("replicas", 0, "start this many replicas as child processes and show their logs")
	name := flag.String("name", "examples/singleton", "the name of the election")
	flag.Parse()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	if *replicas > 0 {
		os.Exit(supervise(*replicas))
	}
	os.Exit(replica(*id, *name, url))
}

func replica(id, name, url string) int {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("replica", id, "pid", os.Getpid())
	e, err := pgleader.New(url, name)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 2
	}
	w := backi.Loop(name, func(ctx context.Context) error {
		term, _ := backi.TermFrom(ctx)
		log.Info("reconciling", "term", term.Token())
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		return nil
	}, backi.WithLeader(e))
	h := backi.NewHost(backi.WithLogger(log))
	h.Add(w)
	if err := h.Run(context.Background()); err != nil {
		log.Error("host failed", "err", err)
		return 1
	}
	return 0
}

// supervise starts n replicas of this program and copies their output until
// they have all ended; Ctrl+C stops them all.
func supervise(n int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var cmds []*exec.Cmd
	for i := range n {
		id := string(rune('a' + i))
		cmd := exec.Command(os.Args[0], "-id", id)
		cmd.Env = os.Environ()
		out, err := cmd.StdoutPipe()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cmds = append(cmds, cmd)
		wg.Go(func() {
			copyLines(&mu, out)
			cmd.Wait()
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-sigs:
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGTERM)
		}
		<-done
	case <-done:
	}
	return 0
}

func copyLines(mu *sync.Mutex, r io.Reader) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		mu.Lock()
		fmt.Println(s.Text())
		mu.Unlock()
	}
}
