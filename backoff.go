package backi

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Default bounds of the exponential backoff a worker uses when no
// [WithBackoff] option is given.
const (
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// The bounds of every wait after a failure, whatever a Backoff or a failure
// hook chooses: a failing loop never runs back to back, and a wait's end
// always fits in a time.Time.
const (
	minWait = time.Millisecond
	maxWait = 100 * 365 * 24 * time.Hour
)

// defaultBackoff is what a worker uses without WithBackoff, and when its
// Backoff panics.
var defaultBackoff = ExponentialBackoff(DefaultBackoffMin, DefaultBackoffMax)

// Backoff chooses the wait after a failure. Wait is called with the number of
// consecutive failures of one loop, starting at 1; a success resets the count.
// Implementations must be safe for concurrent use. A wait under 1 ms
// (negative included) is taken as 1 ms, and one over 100 years as 100 years;
// a Backoff that panics is logged, and the default backoff used for that wait.
//
// A wait of 500 ms or more ends on the next tick of a clock the process's
// loops share, which ticks every 50 ms from a phase of its own: at most 50 ms
// late, never early. The loops of a process that wait together then wake it
// together, and two processes do not tick in step.
type Backoff interface {
	Wait(attempt int) time.Duration
}

// ConstantBackoff waits d after every failure. ConstantBackoff(500*time.Millisecond)
// behaves like the .NET Backi.Continuous example. d must not be negative; a
// wait under 1 ms is taken as 1 ms (see Backoff).
func ConstantBackoff(d time.Duration) Backoff { return constantBackoff(d) }

type constantBackoff time.Duration

func (b constantBackoff) Wait(int) time.Duration { return time.Duration(b) }

func (b constantBackoff) validate() error {
	if b < 0 {
		return fmt.Errorf("ConstantBackoff(%v): the wait must not be negative", time.Duration(b))
	}
	return nil
}

// ExponentialBackoff doubles the wait with every consecutive failure, from min
// up to max, with jitter so that many workers failing together spread out: the
// wait after attempt n is drawn uniformly from [max(min, d/2), d], where
// d = min·2^(n−1) capped at max. It is the default, with [DefaultBackoffMin]
// and [DefaultBackoffMax]. Requires 0 < min ≤ max.
func ExponentialBackoff(min, max time.Duration) Backoff {
	return &exponentialBackoff{min: min, max: max}
}

type exponentialBackoff struct{ min, max time.Duration }

func (b *exponentialBackoff) validate() error {
	if b.min <= 0 || b.max < b.min {
		return fmt.Errorf("ExponentialBackoff(%v, %v): need 0 < min <= max", b.min, b.max)
	}
	return nil
}

func (b *exponentialBackoff) Wait(attempt int) time.Duration {
	d := b.nominal(attempt)
	lo := max(b.min, d/2)
	if d <= lo {
		return d
	}
	return lo + rand.N(d-lo+1)
}

// nominal is min·2^(attempt−1), capped at max, without overflow.
func (b *exponentialBackoff) nominal(attempt int) time.Duration {
	d := b.min
	for i := 1; i < attempt && d < b.max; i++ {
		if d > b.max/2 {
			return b.max
		}
		d *= 2
	}
	return min(d, b.max)
}
