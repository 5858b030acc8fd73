package backi

import (
	"math/rand/v2"
	"time"
)

// A pacer says when a lane's turns start: at once, after an idle or backoff
// wait, or at a scheduled time. A lane asks next before each turn and tells
// ended how the turn went.
type pacer interface {
	next(l *lane) *step
	ended(l *lane, s *step, res Result, end time.Time, wait time.Duration)
}

// step is a pacer's answer: when the next turn starts, and how the lane
// waits until then. The pacer owns it; the lane only notes woken.
type step struct {
	at       time.Time // when the turn starts; zero for at once
	state    State     // the lane's state while it waits
	wakeable bool      // whether Wake ends the wait
	due      time.Time // the scheduled run the turn performs, if any
	retry    bool      // after the wait, ask next again instead of running a turn
	stop     bool      // the lane ends instead, with err
	err      error

	woken bool // set by the lane: Wake ended the wait
}

// newPacer returns the pacer of one lane for one run of its loops.
func (w *Worker) newPacer() pacer {
	if w.cfg.schedule != nil {
		return &scheduled{c: &w.cfg, relative: w.cfg.relative()}
	}
	return &continuous{c: &w.cfg}
}

// continuous runs turns back to back, idles after ErrNoWork with a wait that
// grows between the WithIdle bounds, and backs off after a failure.
type continuous struct {
	c    *config
	idle time.Duration // the latest idle wait, 0 after work
	then step
}

func (p *continuous) next(*lane) *step { return &p.then }

func (p *continuous) ended(_ *lane, _ *step, res Result, end time.Time, wait time.Duration) {
	switch res {
	case ResultSuccess:
		p.idle, p.then.at = 0, time.Time{} // at once
	case ResultNoWork:
		p.idle = min(max(p.c.idleMin, 2*p.idle), p.c.idleMax)
		p.then = step{at: onTick(end, p.idle), state: StateIdle, wakeable: true}
	case ResultFailure:
		p.then = step{at: onTick(end, wait), state: StateBackingOff}
	}
}

// The idle and backoff waits of the loops of one process (those after a
// failed scheduled run included) end together, on
// ticks of a clock of the process's own, so that a thousand waiting loops
// wake the process a few times a second rather than a thousand times. A wait
// of at least coalesceFrom ends on the first tick at or after from+wait: at
// most tickEvery late, never early. Every process has a random phase, so the
// loops of several replicas do not wake in step.
const (
	tickEvery    = 50 * time.Millisecond
	coalesceFrom = 10 * tickEvery // so that a tick adds at most a tenth
)

var tickPhase = rand.N(tickEvery)

// onTick returns when a wait of d from from ends: from+d, moved to the next
// tick when d is long enough.
func onTick(from time.Time, d time.Duration) time.Time {
	at := from.Add(d)
	if d < coalesceFrom {
		return at
	}
	shifted := at.Add(-tickPhase)
	past := shifted.Sub(shifted.Truncate(tickEvery)) // since the last tick
	if past == 0 {
		return at
	}
	return at.Add(tickEvery - past)
}
