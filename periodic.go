package backi

import (
	"cmp"
	"context"
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
	again    bool // then, a wait to ask the schedule again, was handed out
	resumed  bool // made on Resume after a turn: no run at start (WithRunAtStart)
}

func (p *scheduled) next(l *lane) *step {
	switch {
	case !p.known:
		if !p.first(l) {
			l.sl.setNextRun(time.Time{})
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
		p.then = step{stop: true}
	default:
		l.sl.setNextRun(cmp.Or(p.then.at, p.due))
	}
	return &p.then
}

func (p *scheduled) ended(l *lane, s *step, res Result, end time.Time, wait time.Duration) {
	if s.woken {
		return // an extra run: the schedule stays as it was
	}
	next, ok := p.after(l, p.due, end)
	if res == ResultFailure {
		if retry := onTick(end, wait); ok && (next.IsZero() || retry.Before(next)) {
			p.then = step{at: retry, state: StateBackingOff, due: p.due} // retry the same run
			return
		}
	} else {
		done := p.due
		if p.relative {
			done = end
		}
		if err := l.saveRun(done); err != nil {
			l.r.log.LogAttrs(l.ctx, slog.LevelError, "could not record the run", slog.Time("due", p.due), slog.Any("err", err))
		}
	}
	p.plan(l, next, ok, end)
}

// plan makes due the next run, to start with jitter; when the schedule
// failed (not ok), the lane asks it again after a backoff wait from now.
func (p *scheduled) plan(l *lane, due time.Time, ok bool, now time.Time) {
	if !ok {
		p.stalls++
		p.then = step{at: onTick(now, l.w.backoffWait(p.stalls, l.r.log)), state: StateBackingOff, retry: true}
		return
	}
	p.due = due
	p.then = step{at: due.Add(p.jitter(due)), state: StateIdle, wakeable: true, due: due}
}

// jitter draws the delay of the run due at due, below WithJitter and below
// the time to the run that follows, so that jitter never skips a run.
func (p *scheduled) jitter(due time.Time) time.Duration {
	limit := p.c.jitter
	if limit <= 0 || due.IsZero() {
		return 0
	}
	if following, err := protect(func() (time.Time, error) { return p.c.schedule.Next(due), nil }); err == nil && following.After(due) {
		limit = min(limit, following.Sub(due))
	}
	return rand.N(limit)
}

// first works out the first run: now with WithRunAtStart, unless the lane
// resumes after its turns began, else from the last completed run in the
// store (see resume). It reports false when the lane is to ask again after
// p.then's wait, or end: when the store cannot be read, which is a failure
// of the lane, or the schedule failed.
func (p *scheduled) first(l *lane) bool {
	now := time.Now()
	if p.c.runAtStart && !p.resumed {
		p.known, p.due = true, now
		p.then = step{state: StateIdle, due: now}
		return true
	}
	last, err := l.lastRun()
	now = time.Now()
	switch {
	case err != nil && isDone(l.done):
		p.then = step{stop: true} // stopping: not a failure
		return false
	case err != nil:
		wait, stop, err := l.failed(err, nil, 0, now)
		p.then = step{at: onTick(now, wait), state: StateBackingOff, retry: true}
		if stop {
			p.then = step{stop: true, err: err}
		}
		return false
	}
	next, ok := p.resume(l, last, now)
	p.plan(l, next, ok, now)
	p.known = ok
	return ok
}

// resume returns the run that follows last, the last completed run, at now:
// after the first start ever (no last run), which it records, the
// schedule's next; else the schedule's next after last, or, if that is past
// (runs were missed while the worker was down), one run now, unless
// WithSkipMissed. ok is false when the schedule failed.
func (p *scheduled) resume(l *lane, last, now time.Time) (time.Time, bool) {
	if last.IsZero() {
		// Recorded, so that a first run that falls while the process is down
		// is still run on restart.
		if err := l.saveRun(now); err != nil && !isDone(l.done) {
			l.r.log.LogAttrs(l.ctx, slog.LevelError, "could not record the schedule's start", slog.Any("err", err))
		}
		return p.ask(l, now, now)
	}
	next, ok := p.ask(l, last, last)
	switch {
	case !ok || next.IsZero() || next.After(now):
		return next, ok
	case p.c.skipMissed:
		return p.ask(l, now, now)
	case p.relative:
		return now, true
	}
	return p.ask(l, last, now)
}

// after returns the run that follows the one due at due, which ended at end
// (see nextDue), and whether the schedule gave a usable answer.
func (p *scheduled) after(l *lane, due, end time.Time) (time.Time, bool) {
	if p.relative {
		return p.ask(l, end, end)
	}
	return p.ask(l, due, end)
}

// ask asks the schedule for its next run after prev, caught up to the latest
// run due by end (see nextDue), and checks the answer: a panic is logged
// (ok is false), and a run that is not after prev is replaced by a backoff
// wait from end, reported once.
func (p *scheduled) ask(l *lane, prev, end time.Time) (next time.Time, ok bool) {
	next, err := protect(func() (time.Time, error) { return nextDue(p.c.schedule, prev, end), nil })
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

// lastRun reads the worker's last completed run from its store, bounded by
// the store timeout (see bounded).
func (l *lane) lastRun() (last time.Time, err error) {
	err = bounded(l.ctx, storeTimeout, "ScheduleStore.LastRun", func(ctx context.Context) (err error) {
		last, err = l.w.cfg.store.LastRun(ctx, l.w.name)
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	return last, nil
}

// saveRun records a completed run in the worker's store, bounded by the store
// timeout (see bounded). It records even while the worker stops: the run
// happened.
func (l *lane) saveRun(t time.Time) error {
	return bounded(context.WithoutCancel(l.ctx), storeTimeout, "ScheduleStore.SaveRun", func(ctx context.Context) error {
		return l.w.cfg.store.SaveRun(ctx, l.w.name, t)
	})
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
func stackAttr(err error) slog.Attr {
	if pe, ok := as[*PanicError](err); ok {
		return slog.String("stack", string(pe.Stack))
	}
	return slog.Attr{}
}
