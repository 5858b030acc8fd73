package backi

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// storeTimeout bounds each call of a ScheduleStore (see WithScheduleStore).
const storeTimeout = 5 * time.Second

// scheduled paces the lane of a worker with a schedule (see WithSchedule):
// one turn at each run the schedule gives, a retry after a failure unless the
// next run comes first, and an extra turn on Wake that leaves the schedule as
// it was.
type scheduled struct {
	c        *config
	relative bool // the schedule counts from the end of each run (Delay)
	known    bool // whether the first run is known yet
	due      time.Time
	then     step
	stalls   int  // the schedule's failures in a row, for their backoff
	warned   bool // about a schedule that does not advance
	again    bool // the schedule is to be asked again: then's wait was for that
}

func (p *scheduled) next(l *lane) *step {
	switch {
	case !p.known:
		if !p.first(l) {
			return &p.then
		}
	case p.again:
		p.again = false
		now := time.Now()
		next, ok := p.after(l, p.due, now)
		p.plan(l, next, ok, now)
	}
	switch {
	case p.then.retry:
		p.again = true
		l.sl.setNextRun(time.Time{})
	case p.due.IsZero():
		l.sl.setNextRun(time.Time{})
		l.r.log.LogAttrs(l.ctx, slog.LevelInfo, "schedule has no further runs")
		p.then = step{end: true}
	default:
		l.sl.setNextRun(cmp.Or(p.then.at, p.due))
	}
	return &p.then
}

func (p *scheduled) ended(l *lane, s *step, res Result, end time.Time, wait time.Duration) {
	if s.woken || s.retry {
		return // an extra run: the schedule stays as it was
	}
	if res == ResultFailure {
		next, ok := p.after(l, p.due, end)
		if retry := end.Add(wait); ok && (next.IsZero() || retry.Before(next)) {
			p.then = step{at: retry, state: StateBackingOff, due: p.due} // retry the same run
			return
		}
		p.plan(l, next, ok, end)
		return
	}
	done := p.due
	if p.relative {
		done = end
	}
	// A run that completed is recorded even when the worker is stopping: its
	// context is done, but the run happened.
	if err := l.saveRun(context.WithoutCancel(l.ctx), done); err != nil {
		l.r.log.LogAttrs(l.ctx, slog.LevelError, "could not record the run", slog.Time("due", p.due), slog.Any("err", err))
	}
	next, ok := p.after(l, p.due, end)
	p.plan(l, next, ok, end)
}

// plan makes due the next run, to start with jitter; when the schedule
// failed (not ok), the lane asks it again after a backoff wait from now.
func (p *scheduled) plan(l *lane, due time.Time, ok bool, now time.Time) {
	if !ok {
		p.stalls++
		p.then = step{at: now.Add(l.w.backoffWait(p.stalls, l.r.log)), state: StateBackingOff, retry: true}
		return
	}
	p.due = due
	at := due
	if p.c.jitter > 0 && !due.IsZero() {
		at = at.Add(rand.N(p.c.jitter))
	}
	p.then = step{at: at, state: StateIdle, wakeable: true, due: due}
}

// first works out the first run: now with WithRunAtStart, else after the
// last completed run in the store, else (the first start ever, which it
// records) the schedule's next. Runs missed while the worker was down make
// one run due now, unless WithSkipMissed. A store that cannot be read is a
// failure of the lane, retried after its wait; first reports false then,
// and p.then is what the lane does.
func (p *scheduled) first(l *lane) bool {
	c := p.c
	now := time.Now()
	if c.runAtStart {
		p.known, p.due = true, now
		p.then = step{state: StateIdle, due: now}
		return true
	}
	last, err := l.lastRun()
	now = time.Now()
	if err != nil {
		l.sl.started.Store(now.UnixNano()) // for the failure record's duration
		wait, stop, err := l.failed(err, nil, now)
		if stop {
			p.then = step{end: true, err: err}
			return false
		}
		p.then = step{at: now.Add(wait), state: StateBackingOff, retry: true}
		return false
	}
	p.known = true
	if last.IsZero() {
		// The schedule starts now: recorded, so that a first run that falls
		// while the process is down is still run on restart.
		if err := l.saveRun(l.ctx, now); err != nil {
			l.r.log.LogAttrs(l.ctx, slog.LevelError, "could not record the schedule's start", slog.Any("err", err))
		}
		next, ok := p.ask(l, now, now, true)
		p.plan(l, next, ok, now)
		return true
	}
	next, ok := p.ask(l, last, last, true)
	switch {
	case !ok || next.IsZero() || next.After(now):
	case c.skipMissed:
		next, ok = p.ask(l, now, now, true)
	case p.relative:
		next = now
	default:
		next, ok = p.after(l, last, now)
	}
	p.plan(l, next, ok, now)
	return true
}

// after returns the run that follows the one due at due, which ended at end
// (see nextDue), and whether the schedule gave a usable answer.
func (p *scheduled) after(l *lane, due, end time.Time) (time.Time, bool) {
	if p.relative {
		return p.ask(l, end, end, false)
	}
	return p.ask(l, due, end, false)
}

// ask asks the schedule for its next run after prev, catching up to the
// latest run due by end, and checks the answer: a panic is logged, and a run
// that is not after prev is replaced by a backoff wait from end, reported
// once. ok is false when the schedule panicked.
func (p *scheduled) ask(l *lane, prev, end time.Time, single bool) (time.Time, bool) {
	s := p.c.schedule
	next, err := protect(func() (time.Time, error) {
		if single {
			return s.Next(prev), nil
		}
		return nextDue(s, prev, end), nil
	})
	if err != nil {
		l.r.log.LogAttrs(l.ctx, slog.LevelError, "schedule failed", slog.Any("err", err), stackAttr(err))
		return time.Time{}, false
	}
	if next.IsZero() || next.After(prev) {
		p.stalls = 0
		return next, true
	}
	if !p.warned {
		p.warned = true
		l.r.log.LogAttrs(l.ctx, slog.LevelWarn, "schedule does not advance: runs are spaced by the backoff",
			slog.Time("after", prev), slog.Time("next", next))
	}
	p.stalls++
	return end.Add(l.w.backoffWait(p.stalls, l.r.log)), true
}

// nextDue returns the run that follows the one due at due, once end has
// passed: when the schedule's next run is already past, the runs are not
// caught up one by one, the latest of them is due at once. It asks a
// schedule that advances at most about 65 times, however dense it is.
func nextDue(s Schedule, due, end time.Time) time.Time {
	n := s.Next(due)
	if n.IsZero() || n.After(end) || !n.After(due) {
		return n
	}
	// Runs were missed: find the latest at or before end by bisection,
	// between lo, whose next run is at or before end, and hi, whose is not.
	lo, hi := n, end
	if m := s.Next(lo); m.IsZero() || m.After(end) {
		return n
	}
	for hi.Sub(lo) > 1 {
		mid := lo.Add(hi.Sub(lo) / 2)
		if m := s.Next(mid); !m.IsZero() && !m.After(end) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return s.Next(lo)
}

// lastRun reads the worker's last completed run from its store, within the
// store timeout.
func (l *lane) lastRun() (time.Time, error) {
	ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
	defer cancel()
	return protect(func() (time.Time, error) { return l.w.cfg.store.LastRun(ctx, l.w.name) })
}

// saveRun records a completed run in the worker's store, within the store
// timeout.
func (l *lane) saveRun(ctx context.Context, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := protect(func() (struct{}, error) { return struct{}{}, l.w.cfg.store.SaveRun(ctx, l.w.name, t) })
	return err
}

type dueKey struct{}

// ScheduledFor returns the time the scheduled run an iteration performs was
// due, for a worker with WithSchedule; not for a run started by Wake. Keyed by
// it, the iteration's effects can be made idempotent, so that a run repeated
// after a crash between its end and its record in the ScheduleStore has no
// effect twice.
func ScheduledFor(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(dueKey{}).(time.Time)
	return t, ok
}

// relative reports whether the schedule counts from the end of each run
// (Delay) rather than from the previous run's due time.
func (c *config) relative() bool {
	_, ok := c.schedule.(delay)
	return ok
}

// stackAttr returns the stack of a panic in err, if any, as a log attribute.
func stackAttr(err error) (a slog.Attr) {
	defer func() { recover() }() // err's Unwrap is user code
	var pe *PanicError
	if errors.As(err, &pe) {
		return slog.String("stack", string(pe.Stack))
	}
	return slog.Attr{}
}
