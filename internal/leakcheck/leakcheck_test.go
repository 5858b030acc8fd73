package leakcheck

import (
	"fmt"
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

func TestTestSeesOnlyGoroutinesStartedAfterIt(t *testing.T) {
	old := make(chan struct{})
	go parkedForLeakcheckTest(old)
	defer close(old)

	var ft fakeT
	Test(&ft)
	stop := make(chan struct{})
	go parkedForLeakcheckTest(stop)
	go func() { time.Sleep(50 * time.Millisecond); close(stop) }()
	ft.cleanup()
	if ft.failed != "" {
		t.Fatalf("a goroutine that ended in time, or one started before, was reported:\n%s", ft.failed)
	}

	defer func(p time.Duration) { testPatience = p }(testPatience)
	testPatience = 100 * time.Millisecond
	Test(&ft)
	late := make(chan struct{})
	defer close(late)
	go parkedForLeakcheckTest(late)
	ft.cleanup()
	if !strings.Contains(ft.failed, "parkedForLeakcheckTest") || strings.Count(ft.failed, "parkedForLeakcheckTest") != 1 {
		t.Fatalf("want the one goroutine started after Test reported, got:\n%s", ft.failed)
	}
}

// fakeT records what Test reports, so that its failure can be asserted.
type fakeT struct {
	testing.TB
	cleanup func()
	failed  string
}

func (f *fakeT) Helper()                           {}
func (f *fakeT) Cleanup(fn func())                 { f.cleanup = fn }
func (f *fakeT) Errorf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }
