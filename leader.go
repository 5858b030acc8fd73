package backi

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Elector decides which replica of a service leads, for workers that must run
// on one replica at a time (see WithLeader). Package pgleader implements it on
// PostgreSQL; any engine can.
type Elector interface {
	// Campaign blocks until this replica leads and returns the Term, or
	// returns an error: ctx's once it is done, or why campaigning failed (the
	// worker then retries after its backoff wait).
	Campaign(ctx context.Context) (Term, error)
}

// Term is one replica's spell of leadership.
//
// A Term may also have a lease on this replica's clock: a method
// Lease() time.Time telling until when leadership is certain, which never
// moves earlier while Done is open. A worker then starts no turn at or after
// that instant, even if Done has not closed yet (after a long pause of the
// process, the goroutine that would close it may not have run): it takes the
// term as lost, and resigns it. The lease guards only the start of turns:
// Done must still close when the lease ends, to cancel the iteration in
// flight.
type Term interface {
	// Done is closed as soon as leadership is lost or in doubt.
	Done() <-chan struct{}
	// Token is the term's fencing token: it grows with every term, across
	// replicas, so that writes guarded by it reject a deposed leader's.
	Token() uint64
	// Resign gives leadership up at once, so that another replica can take
	// over without waiting. ctx bounds how long it may take.
	Resign(ctx context.Context) error
}

// ErrLeadershipLost is the cause of an iteration's context when it was
// cancelled because this replica stopped leading (see context.Cause).
var ErrLeadershipLost = errors.New("backi: leadership lost")

// resignTimeout bounds Term.Resign when a leading worker stops.
const resignTimeout = 5 * time.Second

// WithLeader makes the worker run only while this replica leads, as e
// decides. Until then it campaigns; when leadership is lost, the context of
// the iteration in flight is cancelled at once (with cause ErrLeadershipLost;
// it is not a failure) and the worker campaigns again. When the worker stops,
// it resigns so that another replica takes over at once. Iterations find the
// term, and its fencing token, with TermFrom. e must not be nil.
func WithLeader(e Elector) Option {
	return optionFunc(func(c *config) error {
		if e == nil {
			return errors.New("WithLeader(nil): elector is nil")
		}
		c.elector = e
		return nil
	})
}

type termKey struct{}

// TermFrom returns the leadership term an iteration runs under, if its worker
// has WithLeader.
func TermFrom(ctx context.Context) (Term, bool) {
	t, ok := ctx.Value(termKey{}).(Term)
	return t, ok
}

// lead campaigns, runs the worker's loops while leading, and campaigns again
// when leadership is lost, until the Run's context is done or the worker
// ends. While it campaigns, every loop is in StateCampaigning. A failed
// campaign, and a term lost before any of its turns ended, are followed by a
// backoff wait, so that a broken elector never makes the worker spin.
func (r *run) lead() error {
	ctx, log := r.ctx, r.log
	attempt := 0 // failed campaigns and fruitless terms in a row
	for {
		for _, l := range r.lanes {
			l.setState(StateCampaigning)
		}
		term, token, done, err := r.campaign()
		if isDone(ctx.Done()) {
			if err == nil {
				r.resign(term, token)
			}
			return nil
		}
		if err == nil {
			fruitful, end, err := r.holdTerm(term, token, done)
			if end {
				return err
			}
			if fruitful {
				attempt = 0
				continue
			}
		}
		attempt++
		wait := r.w.backoffWait(attempt, log)
		if err != nil {
			r.w.stats.campaigns.Add(1)
			log.LogAttrs(ctx, slog.LevelError, "campaign failed", slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.Any("err", err), stackAttr(err))
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// holdTerm runs the worker's loops until done, the term's Done channel, is
// closed. It reports whether any turn ended in the term on its own (not cut
// short by the loss), and whether the worker ends, with err, instead of
// campaigning again.
func (r *run) holdTerm(term Term, token uint64, done <-chan struct{}) (fruitful, end bool, err error) {
	w, ctx, log := r.w, r.ctx, r.log
	if isDone(done) { // lost already: nothing to lead
		r.resign(term, token)
		log.LogAttrs(ctx, slog.LevelWarn, "leadership lost at once", slog.Uint64("term", token))
		return false, false, nil
	}
	since, settled := time.Now(), w.stats.settled()
	w.stats.term.Store(token)
	w.stats.leaderSince.Store(since.UnixNano())
	resigned := false
	defer func() {
		w.stats.leaderSince.Store(0)
		if !resigned { // runtime.Goexit: the term must not outlive the worker
			r.resign(term, token)
		}
	}()
	log.LogAttrs(ctx, slog.LevelInfo, "leading", slog.Uint64("term", token))
	lost, err := r.runLanes(context.WithValue(ctx, termKey{}, term), newHeld(term, done))
	if !lost || err != nil || isDone(ctx.Done()) {
		return false, true, err
	}
	resigned = true
	if !isDone(done) { // past its lease: the elector may not know yet
		r.resign(term, token)
	}
	log.LogAttrs(ctx, slog.LevelWarn, "leadership lost", slog.Uint64("term", token), slog.Duration("led", time.Since(since)))
	return w.stats.settled() > settled, false, nil
}

// held is what the loops need of the term they run under.
type held struct {
	done  <-chan struct{}  // the term's Done
	lease func() time.Time // the term's Lease method, if it has one
}

func newHeld(term Term, done <-chan struct{}) *held {
	h := &held{done: done}
	if t, ok := term.(interface{ Lease() time.Time }); ok {
		h.lease = t.Lease
	}
	return h
}

// leaseTimeout bounds a call of Term.Lease (see bounded).
const leaseTimeout = 100 * time.Millisecond

// termOver reports whether the term the loop runs under, if any, is lost or
// past its lease, which the loop asks before each turn. It asks the term's
// Lease method again only once the lease it last told has passed (a lease
// never moves earlier while Done is open). A Lease method that panics or
// does not answer within leaseTimeout ends the term, and is logged.
func (l *lane) termOver() bool {
	h := l.term
	switch {
	case h == nil:
		return false
	case isDone(h.done):
		return true
	case h.lease == nil:
		return false
	}
	now := time.Now()
	if now.Before(l.trusted) {
		return false
	}
	until := make(chan time.Time, 1)
	err := bounded(context.Background(), leaseTimeout, "Term.Lease", func(context.Context) error {
		until <- h.lease()
		return nil
	})
	if err != nil {
		l.r.log.LogAttrs(context.Background(), slog.LevelError, "Term.Lease failed: leadership taken as lost", slog.Any("err", err), stackAttr(err))
		return true
	}
	l.trusted = <-until
	return !now.Before(l.trusted)
}

// campaign asks the elector for a term, and the term for its token and Done
// channel, turning a panic in any of them into a failed campaign.
func (r *run) campaign() (term Term, token uint64, done <-chan struct{}, err error) {
	term, err = protect(func() (Term, error) { return r.w.cfg.elector.Campaign(r.ctx) })
	if err == nil && term == nil {
		err = errors.New("backi: Elector.Campaign returned a nil Term and no error")
	}
	if err != nil {
		return nil, 0, nil, err
	}
	token, err = protect(func() (uint64, error) { return term.Token(), nil })
	if err == nil {
		done, err = protect(func() (<-chan struct{}, error) { return term.Done(), nil })
	}
	if err != nil {
		r.resign(term, token)
		return nil, 0, nil, err
	}
	return term, token, done, nil
}

// resign gives the term up, bounded by resignTimeout (see bounded), and logs
// a failure.
func (r *run) resign(term Term, token uint64) {
	err := bounded(context.WithoutCancel(r.ctx), resignTimeout, "Term.Resign", term.Resign)
	if err != nil {
		r.log.LogAttrs(r.ctx, slog.LevelError, "could not resign", slog.Uint64("term", token), slog.Any("err", err), stackAttr(err))
	}
}

// sleep waits for d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
