package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/demotest"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/internal/pgtest"
)

func TestMain(m *testing.M) {
	demotest.Main(main)
	leakcheck.Main(m)
}

// TestTakeover starts two replicas: the first works; killed, the second takes
// over with the next term.
func TestTakeover(t *testing.T) {
	url := pgtest.URL(t)
	t.Setenv("DATABASE_URL", url)
	name := fmt.Sprintf("singleton-test-%d", rand.Int64())

	a := demotest.Start(t, "-id", "a", "-name", name)
	a.WaitFor("msg=reconciling replica=a")
	b := demotest.Start(t, "-id", "b", "-name", name)
	b.WaitFor(`msg="worker started" replica=b`)
	time.Sleep(1500 * time.Millisecond)
	a.Kill()
	b.WaitFor("msg=reconciling replica=b")
	b.Stop(2 * time.Second)
}
