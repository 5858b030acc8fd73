package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) {
	if os.Getenv("HELLO_CHILD") == "1" {
		main()
		os.Exit(0)
	}
	leakcheck.Main(m)
}

// TestDemo runs the demo as a user would: it serves Hello World!, the worker
// logs Running and Done, and SIGTERM stops it with status 0.
func TestDemo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command(os.Args[0], "-addr", addr)
	cmd.Env = append(os.Environ(), "HELLO_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	var log []string
	waitFor := func(msg string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the demo ended before logging %q:\n%s", msg, strings.Join(log, "\n"))
				}
				log = append(log, l)
				if strings.Contains(l, msg) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q in the log:\n%s", msg, strings.Join(log, "\n"))
			}
		}
	}
	waitFor("msg=Running worker=hello")
	waitFor("msg=Done worker=hello")

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != 200 || string(body) != "Hello World!" {
		t.Fatalf("GET / = %d %q", resp.StatusCode, body)
	}

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waitFor(`msg="host stopped"`)
	for l := range lines {
		log = append(log, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, strings.Join(log, "\n"))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopping took %v", d)
	}
	for _, l := range log {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			t.Fatalf("a clean run logged a problem: %s", l)
		}
	}
}
