package loopstates

import (
	"fmt"
	"testing"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestGaugesFollowTheLoops(t *testing.T) {
	var tr Tracker
	for _, step := range []struct {
		from, to backi.State
		want     string
	}{
		{backi.StateNew, backi.StateRunning, "[{running true}]"},                            // loop 0
		{backi.StateNew, backi.StateRunning, "[{running true}]"},                            // loop 1
		{backi.StateRunning, backi.StateIdle, "[{stuck false} {running true} {idle true}]"}, // loop 0; loop 1 still runs
		{backi.StateRunning, backi.StateStuck, "[{stuck true}]"},                            // loop 1 reported stuck
		{backi.StateRunning, backi.StateBackingOff, "[{stuck false} {running false} {backing off true}]"},
		{backi.StateIdle, backi.StateStopped, "[{idle false}]"},
	} {
		if got := fmt.Sprint(tr.Change(step.from, step.to)); got != step.want {
			t.Fatalf("%v -> %v: %s, want %s", step.from, step.to, got, step.want)
		}
	}
}
