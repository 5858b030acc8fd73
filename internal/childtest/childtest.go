// Package childtest runs a test's body in a child process: the test binary
// re-executed to run only that test. It is for the cases that would take the
// whole test binary down if they failed: a panic on a goroutine the library
// started, a crash, or a hang.
package childtest

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env names the test that a re-executed test binary runs as a child.
const env = "BACKI_CHILD_TEST"

// Run runs body in a child process and fails t unless the child passes and
// exits with status 0 within 20 seconds; in that child, it runs body itself.
func Run(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	if os.Getenv(env) == t.Name() {
		body(t)
		return
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+strings.Join(parts, "/"),
		"-test.v", "-test.count=1", "-test.timeout=15s")
	// The race detector's exit pause would add a second to every child.
	race := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), env+"="+t.Name(), "GORACE="+race)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	const keep = 6000 // of the output, from its end: a crash ends with its stacks
	shown := string(out)
	if len(shown) > keep {
		shown = "…" + shown[len(shown)-keep:]
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the child hung (killed after 20s):\n%s", shown)
	case err != nil:
		t.Fatalf("the child failed: %v\n%s", err, shown)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()+" "):
		t.Fatalf("the child did not report %s as passed:\n%s", t.Name(), shown)
	}
}
