package backi

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is what a worker is doing.
type State int32

const (
	// StateNew: Run has not been called yet.
	StateNew State = iota
	// StateRunning: an iteration is in flight.
	StateRunning
	// StateIdle: waiting after ErrNoWork, or for the next scheduled run.
	StateIdle
	// StateBackingOff: waiting after a failure.
	StateBackingOff
	// StateStopped: Run returned nil.
	StateStopped
	// StateFailed: Run returned an error.
	StateFailed
	// StateStuck: an iteration has run longer than WithStuckAfter allows; the
	// loop leaves it when the iteration returns.
	StateStuck
	// StateCampaigning: waiting to lead (see WithLeader); no iteration runs.
	StateCampaigning
	// StatePaused: paused (see Worker.Pause); no iteration runs.
	StatePaused
)

var stateNames = [...]string{"new", "running", "idle", "backing off", "stopped", "failed", "stuck", "campaigning", "paused"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Status is a snapshot of one worker. It is read with atomic loads, never
// waiting for the loop; while iterations run, counters read a moment apart may
// differ by the iteration that finished in between.
type Status struct {
	Name string
	// State is the most telling state among the worker's loops: stuck, then
	// running, then backing off, then campaigning, then paused, then idle.
	State State
	// Paused tells that the worker is paused (see Worker.Pause), running or
	// not; its State turns to StatePaused once no iteration is in flight,
	// but stays StateCampaigning while a worker with WithLeader waits to lead.
	Paused bool
	// Concurrency is the number of loops (see WithConcurrency).
	Concurrency int
	// Iterations counts finished iterations: Successes + Failures + NoWork,
	// plus those that returned Stop or were cut short by shutdown.
	Iterations uint64
	Successes  uint64
	Failures   uint64
	// CampaignFailures counts the campaigns for leadership that failed (see
	// WithLeader); they are not iterations.
	CampaignFailures uint64
	// NoWork counts iterations that returned ErrNoWork.
	NoWork uint64
	// ConsecutiveFailures counts failures since the last iteration that did
	// not fail, across all loops.
	ConsecutiveFailures uint64
	// LastError is the error of the latest failure, nil before the first one.
	LastError error
	// LastSuccess and LastFailure are when the latest success and failure
	// ended; zero if none yet.
	LastSuccess time.Time
	LastFailure time.Time
	// InFlightSince is when the oldest iteration now in flight started; zero
	// when none is.
	InFlightSince time.Time
	// Schedule describes the worker's schedule (see WithSchedule), as its
	// String method does: "custom" for a schedule without one (or whose
	// String panics), empty without a schedule.
	Schedule string
	// NextRun is when the next scheduled run starts, jitter included (see
	// WithSchedule); zero without a schedule.
	NextRun time.Time
	// Leader tells whether this replica leads (see WithLeader), since
	// LeaderSince, and Term is the fencing token of its latest term.
	Leader      bool
	LeaderSince time.Time
	Term        uint64
}

// slot is the state of one loop, written only by that loop, but for its
// state, which the stuck check changes too, under mu.
type slot struct {
	mu          sync.Mutex
	state       atomic.Int32
	started     atomic.Int64 // UnixNano of the latest iteration's start
	successes   atomic.Uint64
	failures    atomic.Uint64
	noWork      atomic.Uint64
	other       atomic.Uint64 // stopped or cut short by shutdown
	lastSuccess atomic.Int64
	lastFailure atomic.Int64
	nextRun     atomic.Pointer[time.Time] // of the next scheduled run, nil if none

	// signal carries a token when the loop's wait timer fires or Wake is
	// called; woken tells which. See lane.wait.
	signal chan struct{}
	woken  atomic.Bool
}

// setNextRun records when the next scheduled run starts; zero for none.
func (s *slot) setNextRun(t time.Time) {
	if t.IsZero() {
		s.nextRun.Store(nil)
		return
	}
	s.nextRun.Store(&t)
}

// settled is the number of iterations the worker's loops have finished on
// their own: not cut short by shutdown, nor ended by Stop.
func (st *stats) settled() uint64 {
	var n uint64
	for i := range st.slots {
		sl := &st.slots[i]
		n += sl.successes.Load() + sl.failures.Load() + sl.noWork.Load()
	}
	return n
}

// count is the number of iterations the loop has finished.
func (s *slot) count() uint64 {
	return s.successes.Load() + s.failures.Load() + s.noWork.Load() + s.other.Load()
}

// wake ends the loop's current idle wait, or its next one.
func (s *slot) wake() {
	s.woken.Store(true)
	s.poke()
}

// poke sends a token without blocking; one pending token is enough.
func (s *slot) poke() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// stats is what a worker shares between its loops and with Status readers.
type stats struct {
	slots       []slot        // one per loop, made by Loop or Continuous
	term        atomic.Uint64 // the latest term's fencing token (WithLeader)
	leaderSince atomic.Int64  // UnixNano since this replica leads, 0 when it does not
	campaigns   atomic.Uint64 // failed campaigns
	consecutive atomic.Uint64
	lastErr     atomic.Pointer[errorBox]
	lifecycle   atomic.Int32  // StateNew, StateRunning (Run active), StateStopped, StateFailed
	paused      atomic.Bool   // see Worker.Pause
	nextWake    atomic.Uint32 // the loop WakeOne tries first, in turn
	wakeIgnored atomic.Bool   // Wake was called while paused, not yet logged
}

// begin claims the worker for one Run: it reports false when a Run is
// already active.
func (st *stats) begin() bool {
	for {
		s := st.lifecycle.Load()
		if State(s) == StateRunning {
			return false
		}
		if st.lifecycle.CompareAndSwap(s, int32(StateRunning)) {
			return true
		}
	}
}

type errorBox struct{ err error }

// resetConsecutive ends a run of failures; it writes only when there was one,
// so that a healthy loop does not contend on the shared counter.
func (st *stats) resetConsecutive() {
	if st.consecutive.Load() != 0 {
		st.consecutive.Store(0)
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// rank orders the states of loops for Status.State: the most telling wins.
var rank = [...]int{StateStuck: 6, StateRunning: 5, StateBackingOff: 4, StateCampaigning: 3, StatePaused: 2, StateIdle: 1}

func (st *stats) snapshot(name string) Status {
	s := Status{Name: name, State: State(st.lifecycle.Load()), Paused: st.paused.Load()}
	s.ConsecutiveFailures = st.consecutive.Load()
	s.CampaignFailures = st.campaigns.Load()
	s.Term = st.term.Load()
	if t := st.leaderSince.Load(); t != 0 {
		s.Leader, s.LeaderSince = true, time.Unix(0, t)
	}
	if b := st.lastErr.Load(); b != nil {
		s.LastError = b.err
	}
	s.Concurrency = len(st.slots)
	busiest := StateIdle
	var inflight, lastOK, lastFail int64
	for i := range st.slots {
		sl := &st.slots[i]
		s.Successes += sl.successes.Load()
		s.Failures += sl.failures.Load()
		s.NoWork += sl.noWork.Load()
		s.Iterations += sl.other.Load()
		lastOK = max(lastOK, sl.lastSuccess.Load())
		lastFail = max(lastFail, sl.lastFailure.Load())
		if t := sl.nextRun.Load(); t != nil {
			s.NextRun = *t
		}
		state := State(sl.state.Load())
		if t := sl.started.Load(); t != 0 && (inflight == 0 || t < inflight) {
			inflight = t
		}
		if int(state) < len(rank) && rank[state] > rank[busiest] {
			busiest = state
		}
	}
	s.Iterations += s.Successes + s.Failures + s.NoWork
	s.LastSuccess, s.LastFailure = unixTime(lastOK), unixTime(lastFail)
	if s.State == StateRunning {
		s.State = busiest
		s.InFlightSince = unixTime(inflight)
	}
	return s
}
