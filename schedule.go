package backi

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// Schedule paces a periodic worker (see [WithSchedule]): Next returns the
// first run after the given time, or the zero time when there is none. The
// Schedule values of popular cron parsers satisfy it unchanged; the
// github.com/backi-go/backi/cron package parses cron expressions.
type Schedule interface {
	Next(after time.Time) time.Time
}

// Every returns a fixed-rate schedule that runs every d, on wall-clock
// boundaries: at the multiples of d since the Unix epoch, so that
// Every(15*time.Minute) runs at :00, :15, :30 and :45 of every hour, whenever
// the process started. Restarting the process does not move the runs. d must
// be positive. Use EveryFrom to choose the boundaries.
func Every(d time.Duration) Schedule { return EveryFrom(time.Unix(0, 0), d) }

// EveryFrom returns a fixed-rate schedule that runs at anchor + k·d for every
// integer k. EveryFrom(time.Now(), d) anchors the runs at the worker's start.
func EveryFrom(anchor time.Time, d time.Duration) Schedule { return every{anchor, d} }

type every struct {
	anchor time.Time
	d      time.Duration
}

func (e every) String() string {
	if e.anchor.Equal(time.Unix(0, 0)) {
		return "every " + e.d.String()
	}
	return "every " + e.d.String() + " from " + e.anchor.Format(time.RFC3339)
}

func (e every) Next(after time.Time) time.Time {
	anchor := e.near(after)
	since := after.Sub(anchor)
	k := since / e.d
	if since < 0 && since%e.d != 0 {
		k-- // round toward minus infinity
	}
	return anchor.Add((k + 1) * e.d)
}

// near returns a time of the schedule within about 146 years of t, since a
// time.Duration spans only 292 years: the anchor itself, or the anchor
// moved by whole periods.
func (e every) near(t time.Time) time.Time {
	const span = 1 << 62 // nanoseconds, about 146 years
	if d := t.Sub(e.anchor); d > -span && d < span {
		return e.anchor
	}
	// The distance in nanoseconds, in big integers, rounded down to whole
	// periods.
	ns := new(big.Int).Mul(big.NewInt(t.Unix()-e.anchor.Unix()), big.NewInt(1e9))
	ns.Add(ns, big.NewInt(int64(t.Nanosecond()-e.anchor.Nanosecond())))
	ns.Sub(ns, new(big.Int).Mod(ns, big.NewInt(int64(e.d))))
	sec, nsec := new(big.Int).DivMod(ns, big.NewInt(1e9), new(big.Int))
	return time.Unix(e.anchor.Unix()+sec.Int64(), int64(e.anchor.Nanosecond())+nsec.Int64()).In(e.anchor.Location())
}

func (e every) validate() error {
	if e.d <= 0 {
		return fmt.Errorf("Every(%v): need a positive period", e.d)
	}
	return nil
}

// Delay returns a fixed-delay schedule: each run starts d after the previous
// one ended, however long it took. d must be positive.
func Delay(d time.Duration) Schedule { return delay(d) }

type delay time.Duration

func (d delay) Next(after time.Time) time.Time { return after.Add(time.Duration(d)) }

func (d delay) String() string { return time.Duration(d).String() + " after each run" }

func (d delay) validate() error {
	if d <= 0 {
		return fmt.Errorf("Delay(%v): need a positive delay", time.Duration(d))
	}
	return nil
}

// ScheduleStore remembers, for each named schedule, the last run that
// completed, so that a periodic worker neither starves nor repeats runs
// across restarts (see [WithScheduleStore]). Implementations must be safe for
// concurrent use.
type ScheduleStore interface {
	// LastRun returns the time recorded by the latest SaveRun for name, or
	// the zero time if there is none.
	LastRun(ctx context.Context, name string) (time.Time, error)
	// SaveRun records that the run of name due at t has completed. A worker
	// that finds no record on start saves its start time, so that its first
	// run is not lost if the process is down when it falls due.
	SaveRun(ctx context.Context, name string, t time.Time) error
}

// MemoryStore is a ScheduleStore and a ControlStore kept in memory: it
// survives a worker's restart within the process, not the process's. The
// zero value is ready to use.
type MemoryStore struct {
	mu     sync.Mutex
	runs   map[string]time.Time
	paused map[string]bool
}

// LastRun implements ScheduleStore.
func (m *MemoryStore) LastRun(_ context.Context, name string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[name], nil
}

// SaveRun implements ScheduleStore.
func (m *MemoryStore) SaveRun(_ context.Context, name string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		m.runs = make(map[string]time.Time)
	}
	m.runs[name] = t
	return nil
}

// Paused implements ControlStore.
func (m *MemoryStore) Paused(_ context.Context, name string) (paused, set bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	paused, set = m.paused[name]
	return paused, set, nil
}

// SetPaused implements ControlStore.
func (m *MemoryStore) SetPaused(_ context.Context, name string, paused bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused == nil {
		m.paused = make(map[string]bool)
	}
	m.paused[name] = paused
	return nil
}
