package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestFindSeesALeakUntilItEnds(t *testing.T) {
	stop := make(chan struct{})
	go parkedForLeakcheckTest(stop)
	leaks := Find(20 * time.Millisecond)
	found := false
	for _, l := range leaks {
		found = found || strings.Contains(l, "parkedForLeakcheckTest")
	}
	if !found {
		t.Fatalf("a parked goroutine was not reported; got %d stacks", len(leaks))
	}
	close(stop)
	for _, l := range Find(5 * time.Second) {
		if strings.Contains(l, "parkedForLeakcheckTest") {
			t.Fatalf("an ended goroutine is still reported:\n%s", l)
		}
	}
}

func parkedForLeakcheckTest(stop chan struct{}) { <-stop }
