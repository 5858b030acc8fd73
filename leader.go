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

// DefaultResignTimeout bounds Term.Resign when a leading worker stops.
const DefaultResignTimeout = 5 * time.Second

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
// when leadership is lost, until ctx is done or the worker ends.
func (w *Worker) lead(ctx context.Context) error {
	log := w.log
	r := w.newRunner(ctx, 0) // for the failure bookkeeping and waits of campaigning
	defer r.stopTimer()
	attempt := 0
	for {
		term, err := w.cfg.elector.Campaign(ctx)
		if ctx.Err() != nil {
			if err == nil {
				resign(ctx, term, log)
			}
			return nil
		}
		if err != nil {
			attempt++
			if stop, err := r.failAndWait(err, attempt, time.Now()); stop {
				return err
			}
			continue
		}
		attempt = 0
		since := time.Now()
		w.stats.term.Store(term.Token())
		w.stats.leaderSince.Store(since.UnixNano())
		log.LogAttrs(ctx, slog.LevelInfo, "leading", slog.Uint64("term", term.Token()))

		lctx, cancel := context.WithCancelCause(context.WithValue(ctx, termKey{}, term))
		lost := make(chan struct{})
		go func() {
			defer close(lost)
			select {
			case <-term.Done():
				cancel(ErrLeadershipLost)
			case <-lctx.Done():
			}
		}()
		err = w.runLoops(lctx)
		cause := context.Cause(lctx)
		cancel(nil)
		<-lost
		w.stats.leaderSince.Store(0)

		if errors.Is(cause, ErrLeadershipLost) && ctx.Err() == nil {
			log.LogAttrs(ctx, slog.LevelWarn, "leadership lost", slog.Uint64("term", term.Token()), slog.Duration("led", time.Since(since)))
			continue
		}
		resign(ctx, term, log)
		return err
	}
}

func resign(ctx context.Context, term Term, log *slog.Logger) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultResignTimeout)
	defer cancel()
	if err := term.Resign(rctx); err != nil {
		log.LogAttrs(ctx, slog.LevelError, "could not resign", slog.Uint64("term", term.Token()), slog.Any("err", err))
	}
}
