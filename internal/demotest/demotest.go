// Package demotest runs an example program as a user would, for its tests: in
// a child process (the test binary itself, re-executed), reading its log.
package demotest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const childEnv = "BACKI_DEMO_CHILD"

// Main runs the program's main instead of the tests when the test binary was
// started by Start. Call it first in TestMain.
func Main(main func()) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// Proc is a running demo.
type Proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	log   []string
}

// FreeAddr returns a loopback address with a port nobody listens on.
func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start starts the demo with args; it is killed when the test ends.
func Start(t *testing.T, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, cmd: cmd, lines: make(chan string, 100)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

// WaitFor reads the log until a line contains s, for up to 10 seconds.
func (p *Proc) WaitFor(s string) {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("the demo ended before logging %q:\n%s", s, p.Log())
			}
			p.log = append(p.log, l)
			if strings.Contains(l, s) {
				return
			}
		case <-timeout:
			p.t.Fatalf("no %q in the log:\n%s", s, p.Log())
		}
	}
}

// Kill ends the demo with SIGKILL, as a crash would.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	for range p.lines {
	}
	p.cmd.Wait()
}

// Log returns the lines read so far.
func (p *Proc) Log() string { return strings.Join(p.log, "\n") }

// Stop sends SIGTERM and checks that the demo exits with status 0 within
// limit, having logged no warning or error.
func (p *Proc) Stop(limit time.Duration) { p.StopWith(syscall.SIGTERM, limit) }

// StopWith is Stop with another signal.
func (p *Proc) StopWith(sig os.Signal, limit time.Duration) {
	p.t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(sig)
	for l := range p.lines {
		p.log = append(p.log, l)
	}
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("exit: %v\n%s", err, p.Log())
	}
	if d := time.Since(start); d > limit {
		p.t.Fatalf("stopping took %v, want at most %v", d, limit)
	}
	for _, l := range p.log {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			p.t.Fatalf("a clean run logged a problem: %s", l)
		}
	}
}
