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

// WaitGrain is the coarsest grid that a loop's waits after a failure or
// ErrNoWork end on. A wait of d ends at the first multiple of a grain at or
// after the time asked for: the largest of 1, 2 or 5 times a power of ten,
// from 1 ms up to WaitGrain, that is at most d/16 (none for waits under
// 16 ms). A wait thus never ends earlier than asked and at most d/16 later,
// and loops whose waits end about the same time wake together: a thousand
// loops backing off at once cost the process tens of wake-ups a second
// instead of hundreds. A scheduled run (WithSchedule) and its retries start
// on time, off the grid.
const WaitGrain = time.Second

// Backoff chooses the wait after a failure. Wait is called with the number of
// consecutive failures of one loop, starting at 1; a success resets the count.
// Implementations must be safe for concurrent use.
type Backoff interface {
	Wait(attempt int) time.Duration
}

// ConstantBackoff waits d after every failure. ConstantBackoff(500*time.Millisecond)
// behaves like the .NET Backi.Continuous example. d must not be negative.
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
		d *= 2
	}
	return min(d, b.max)
}
