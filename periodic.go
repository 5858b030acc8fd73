package backi

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// periodic is the loop of a worker with a schedule (see WithSchedule).
func (w *Worker) periodic(r *runner) error {
	ctx, sl, log := r.ctx, r.sl, r.log
	defer r.stopTimer()
	defer sl.nextRun.Store(0)
	c := &w.cfg
	relative := c.relative()

	attempt := 0 // consecutive failures
	due, err := w.firstDue(r, &attempt)
	if err != nil || isDone(r.done) {
		return err
	}
	// at is when the run starts: due plus jitter, or a retry's time.
	jittered := func(t time.Time) time.Time {
		if c.jitter > 0 && !t.IsZero() {
			return t.Add(rand.N(c.jitter))
		}
		return t
	}
	at := due
	if !c.runAtStart {
		at = jittered(due)
	}
	for {
		if due.IsZero() {
			log.LogAttrs(ctx, slog.LevelInfo, "schedule has no further runs")
			return nil
		}
		sl.nextRun.Store(due.UnixNano())
		r.setState(StateIdle)

		// Wait for the run; Wake runs an iteration now and leaves it due.
		for woken := true; woken; {
			switch r.wait(time.Now(), at, true) {
			case waitDone:
				return nil
			case waitElapsed:
				woken = false
			case waitWoken:
				log.LogAttrs(ctx, slog.LevelInfo, "run on Wake", slog.Time("next", due))
				if res := r.periodicTurn(&attempt); res.finish {
					return res.err
				}
				r.setState(StateIdle)
			}
		}

		log.LogAttrs(ctx, slog.LevelInfo, "scheduled run", slog.Time("due", due), slog.Duration("late", time.Since(due)))
		r.due = due
		res := r.periodicTurn(&attempt)
		r.due = time.Time{}
		if res.finish {
			return res.err
		}
		next := nextDue(c.schedule, relative, due, res.end)
		if !res.failed {
			done := due
			if relative {
				done = res.end
			}
			// A run that completed is recorded even when the worker is
			// stopping: its context is done, but the run happened.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cleanupTimeout)
			err := c.store.SaveRun(sctx, w.name, done)
			cancel()
			if err != nil {
				log.LogAttrs(ctx, slog.LevelError, "could not record the run", slog.Time("due", due), slog.Any("err", err))
			}
			due, at = next, jittered(next)
			continue
		}
		if retry := res.end.Add(res.wait); next.IsZero() || retry.Before(next) {
			at = retry // retry the same run
			r.setState(StateBackingOff)
			if r.wait(time.Now(), at, false) == waitDone {
				return nil
			}
			continue
		}
		due, at = next, jittered(next) // the next run comes first: it proceeds as usual
	}
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

// periodicResult is how one turn of a periodic worker went.
type periodicResult struct {
	end    time.Time
	failed bool
	wait   time.Duration // the backoff's wait, after a failure
	finish bool          // the worker ends, with err
	err    error
}

// periodicTurn runs one turn and handles what every periodic turn shares: the
// end of the worker and the bookkeeping of failures.
func (r *runner) periodicTurn(attempt *int) periodicResult {
	ictx := r.begin()
	err := r.iterate(ictx)
	out, end, err := r.end(ictx, err)
	switch out {
	case ResultShutdown:
		return periodicResult{end: end, finish: true}
	case ResultStopped:
		return periodicResult{end: end, finish: true, err: err}
	case ResultFailure:
		*attempt++
		wait, stop, serr := r.fail(err, *attempt, end)
		return periodicResult{end: end, failed: true, wait: wait, finish: stop, err: serr}
	}
	*attempt = 0
	return periodicResult{end: end}
}

// firstDue returns the first run's due time: now with WithRunAtStart, else
// after the last completed run in the store, else (the first start ever,
// which it records) the schedule's next. Runs
// missed while the worker was down make one run due now, unless
// WithSkipMissed. A store that cannot be read is a failure, retried.
func (w *Worker) firstDue(r *runner, attempt *int) (time.Time, error) {
	c := &w.cfg
	if c.runAtStart {
		return time.Now(), nil
	}
	for {
		last, err := c.store.LastRun(r.ctx, w.name)
		now := time.Now()
		if err == nil {
			if last.IsZero() {
				// The schedule starts now: recorded, so that a first run that
				// falls while the process is down is still run on restart.
				if err := c.store.SaveRun(r.ctx, w.name, now); err != nil {
					r.log.LogAttrs(r.ctx, slog.LevelError, "could not record the schedule's start", slog.Any("err", err))
				}
				return c.schedule.Next(now), nil
			}
			n := c.schedule.Next(last)
			switch {
			case n.IsZero() || n.After(now):
				return n, nil
			case c.skipMissed:
				return c.schedule.Next(now), nil
			case c.relative():
				return now, nil
			}
			return nextDue(c.schedule, false, last, now), nil
		}
		*attempt++
		r.sl.started.Store(now.UnixNano()) // for the record's duration
		if stop, err := r.failAndWait(err, *attempt, now); stop {
			return time.Time{}, err
		}
	}
}

// relative reports whether the schedule counts from the end of each run
// (Delay) rather than from the previous run's due time.
func (c *config) relative() bool {
	_, ok := c.schedule.(delay)
	return ok
}

// nextDue returns the run that follows the one due at due, which ended at end.
// When the schedule's next run is already past, the ticks are not caught up
// one by one: the latest of them is due at once.
func nextDue(s Schedule, relative bool, due, end time.Time) time.Time {
	if relative {
		return s.Next(end)
	}
	n := s.Next(due)
	if n.IsZero() || n.After(end) {
		return n
	}
	for range 10_000 { // bounded: a dense schedule after a long overrun
		m := s.Next(n)
		if m.IsZero() || m.After(end) {
			break
		}
		n = m
	}
	return n
}
