// Package loopstates turns a worker's per-loop state changes, as an observer
// hears them, into per-state gauges: a state's gauge is 1 while at least one
// loop is in it. Stuck is reported on top of running and ends with the
// iteration.
package loopstates

import (
	"slices"
	"sync"

	"github.com/backi-go/backi"
)

// Gauged are the states that have a gauge.
var Gauged = []backi.State{backi.StateRunning, backi.StateIdle, backi.StateBackingOff, backi.StateStuck}

// Gauge is a new value of one state's gauge.
type Gauge struct {
	State backi.State
	On    bool
}

// Tracker counts one worker's loops in each state. It is safe for concurrent use.
type Tracker struct {
	mu sync.Mutex
	n  map[backi.State]int
}

// Change records that a loop went from one state to another, and returns the
// gauges to set.
func (t *Tracker) Change(from, to backi.State) []Gauge {
	t.mu.Lock()
	defer t.mu.Unlock()
	if from == backi.StateStuck || to == backi.StateStuck {
		return []Gauge{{backi.StateStuck, to == backi.StateStuck}}
	}
	if t.n == nil {
		t.n = map[backi.State]int{}
	}
	if t.n[from] > 0 {
		t.n[from]--
	}
	t.n[to]++
	var gs []Gauge
	if from == backi.StateRunning {
		gs = append(gs, Gauge{backi.StateStuck, false})
	}
	for _, s := range []backi.State{from, to} {
		if slices.Contains(Gauged, s) {
			gs = append(gs, Gauge{s, t.n[s] > 0})
		}
	}
	return gs
}
