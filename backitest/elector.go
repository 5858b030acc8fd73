package backitest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/backi-go/backi"
)

// Elector is a backi.Elector whose leadership the test decides: Grant lets a
// campaign win a new Term, Revoke takes that Term away. Several workers may
// share one Elector, as the replicas of a service share a real one: one Term
// at most is in force at a time, and tokens grow across all of them.
//
// The zero Elector is ready to use. Its methods are safe for concurrent use,
// and wait only on channels, so that an Elector works inside a
// testing/synctest bubble; make it inside the bubble that uses it.
type Elector struct {
	mu      sync.Mutex
	grants  int           // granted, and not yet won by a campaign
	current *Term         // the term in force, nil when none is
	terms   []*Term       // every term, in order
	changed chan struct{} // closed, and dropped, when a campaign may win; made by a campaign that waits
}

// NewElector returns an Elector that no campaign has won and that has no
// grant yet.
func NewElector() *Elector { return &Elector{} }

// Campaign waits until a Grant lets it win and no Term is in force, and then
// returns a new Term in force, whose token is one more than the previous
// Term's (the first is 1). It returns ctx.Err() once ctx is done, even with a
// grant to win. Campaigns that wait together win in no set order.
func (e *Elector) Campaign(ctx context.Context) (backi.Term, error) {
	if ctx == nil {
		return nil, errors.New("backitest: Elector.Campaign(nil): the context is nil")
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.mu.Lock()
		if e.grants > 0 && e.current == nil {
			e.grants--
			t := &Term{e: e, token: uint64(len(e.terms)) + 1, done: make(chan struct{})}
			e.current = t
			e.terms = append(e.terms, t)
			e.mu.Unlock()
			return t, nil
		}
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		changed := e.changed
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// Grant lets one campaign win: one that waits now, or the next one. While a
// Term is in force, the grant waits for it to end (by Revoke or Term.Resign),
// so that two Terms are never in force at once. Grants add up: each lets one
// more campaign win.
func (e *Elector) Grant() {
	e.mu.Lock()
	e.grants++
	e.wake()
	e.mu.Unlock()
}

// Revoke ends the Term in force, if one is: its Done channel closes, so a
// worker under it cancels the iteration in flight, with the cause
// backi.ErrLeadershipLost, and campaigns again. It reports whether a Term was
// in force. Grants not yet won stay.
func (e *Elector) Revoke() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.current
	if t == nil {
		return false
	}
	t.revoked = true
	e.end(t)
	return true
}

// Leading reports whether a Term is in force: won, and neither revoked nor
// resigned.
func (e *Elector) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.current != nil
}

// Terms returns every Term that campaigns have won, in order, the one in
// force (if any) last. The slice is the caller's.
func (e *Elector) Terms() []*Term {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.terms)
}

// end ends t, if it is in force. e.mu is held.
func (e *Elector) end(t *Term) {
	if e.current != t {
		return
	}
	e.current = nil
	close(t.done)
	e.wake()
}

// wake tells the waiting campaigns to look again. e.mu is held.
func (e *Elector) wake() {
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// Term is a spell of leadership that an Elector granted; it is a
// backi.Term. It has no lease (see backi.Term): a worker under it learns that
// it ended from Done alone. Its methods are safe for concurrent use.
type Term struct {
	e        *Elector
	token    uint64
	done     chan struct{}
	revoked  bool // guarded by e.mu
	resigned bool // guarded by e.mu
}

// Done is closed once the Term ends: revoked, or resigned.
func (t *Term) Done() <-chan struct{} { return t.done }

// Token is the Term's fencing token: 1 for an Elector's first Term, and one
// more for each Term after.
func (t *Term) Token() uint64 { return t.token }

// Resign ends the Term, if it is still in force, so that a waiting campaign
// can win once granted, and returns nil; a worker resigns when it stops
// while leading. It does not wait, so ctx does not matter. It returns an
// error only for a Term that no Elector made.
func (t *Term) Resign(ctx context.Context) error {
	if t.e == nil {
		return errors.New("backitest: Term.Resign: the Term was not made by an Elector")
	}
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	if t.e.current == t {
		t.resigned = true
		t.e.end(t)
	}
	return nil
}

// Revoked reports whether Elector.Revoke ended the Term.
func (t *Term) Revoked() bool { return t.state(&t.revoked) }

// Resigned reports whether Resign ended the Term.
func (t *Term) Resigned() bool { return t.state(&t.resigned) }

func (t *Term) state(flag *bool) bool {
	if t.e == nil {
		return false
	}
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	return *flag
}
