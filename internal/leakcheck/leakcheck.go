// Package leakcheck fails a test binary that leaves goroutines behind. It is a
// small standard-library stand-in for go.uber.org/goleak, so that the root
// module's go.mod needs no require line.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and then, if they passed, checks that no goroutine they
// started is still running. Use it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := Find(5 * time.Second); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: %d goroutine(s) still running after the tests:\n\n%s\n", len(leaks), strings.Join(leaks, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// Find returns the stacks of goroutines other than the caller's and the
// runtime's own, waiting up to patience for them to end.
func Find(patience time.Duration) []string {
	return find(patience, nil)
}

// testPatience is how long Test waits for the test's goroutines to end.
var testPatience = 5 * time.Second

// Test fails t, when it ends, if goroutines started after the call are still
// running 5 seconds later; it checks after the cleanups registered after it.
// Goroutines that ran before the call, such as those of the whole test
// binary, are left out. It cannot tell another test's goroutines from t's,
// so a test that uses it must not run in parallel with others:
//
//	leakcheck.Test(t)
func Test(t testing.TB) {
	t.Helper()
	before := make(map[string]bool)
	for _, g := range others() {
		before[header(g)] = true
	}
	t.Cleanup(func() {
		if leaks := find(testPatience, before); len(leaks) > 0 {
			t.Errorf("leakcheck: %d goroutine(s) started by the test still running:\n\n%s", len(leaks), strings.Join(leaks, "\n\n"))
		}
	})
}

// find is Find, leaving out the goroutines whose headers are in old.
func find(patience time.Duration, old map[string]bool) []string {
	deadline := time.Now().Add(patience)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var leaks []string
		for _, g := range others() {
			if !old[header(g)] {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks
		}
		time.Sleep(wait)
	}
}

// header is a goroutine's id, as its stack's first line starts: "goroutine 7".
func header(stack string) string {
	id, _, _ := strings.Cut(stack, " [")
	return id
}

// ignored are functions whose goroutines live for the whole process by design.
var ignored = []string{
	"testing.(*M).",
	"testing.runFuzzing",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"created by runtime.gc",
	"runtime.ReadTrace",
}

func others() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaks []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || g == "" { // the first is the caller
			continue
		}
		if !isIgnored(g) {
			leaks = append(leaks, g)
		}
	}
	return leaks
}

func isIgnored(stack string) bool {
	for _, s := range ignored {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
