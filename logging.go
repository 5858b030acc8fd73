package backi

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backi-go/backi/internal/safe"
)

// stormWindow is how close together failures with the same error must come
// for their records to be collapsed: a failure whose error reads the same as
// the previous record's, less than stormWindow after it, is counted instead of
// logged, and the count is logged in one record ("iteration failed
// repeatedly") before the next record or when the worker stops. Status and
// metrics still see every failure.
const stormWindow = time.Second

// failureRecord is what a failure's log record says.
type failureRecord struct {
	err       error
	iteration uint64
	duration  time.Duration
	attempt   int
	wait      time.Duration
}

// failureLog writes a worker's failure records, collapsing storms.
type failureLog struct {
	// repeated counts the failures with the last record's text since it was
	// written, not written themselves. It changes under mu; flush reads it
	// without mu to skip the lock and the clock when it is zero.
	repeated atomic.Int64
	mu       sync.Mutex
	last     string    // the error text of the last record written
	lastAt   time.Time // when it was written
}

func (l *failureLog) write(ctx context.Context, log *slog.Logger, r failureRecord, now time.Time) {
	msg := safe.Text(r.err)
	l.mu.Lock()
	if msg == l.last && now.Sub(l.lastAt) < stormWindow {
		l.repeated.Add(1)
		l.mu.Unlock()
		return
	}
	sum := l.take(now)
	l.last, l.lastAt = msg, now
	l.mu.Unlock()
	sum.log(ctx, log)

	attrs := []slog.Attr{
		slog.Uint64("iteration", r.iteration),
		slog.Duration("duration", r.duration),
		slog.Int("attempt", r.attempt),
		slog.Duration("wait", r.wait),
		slog.Any("err", r.err),
	}
	attrs = append(attrs, stackAttr(r.err))
	log.LogAttrs(ctx, slog.LevelError, "iteration failed", attrs...)
}

// flush writes the count of failures not yet reported. Every worker calls it
// when it stops, so it costs one atomic load when there is nothing to write.
func (l *failureLog) flush(ctx context.Context, log *slog.Logger) {
	if l.repeated.Load() == 0 {
		return
	}
	l.mu.Lock()
	sum := l.take(time.Now())
	l.mu.Unlock()
	sum.log(ctx, log)
}

// stormSummary is the record of collapsed repeats.
type stormSummary struct {
	err      string
	repeated int
	in       time.Duration
}

// take returns, and resets, the count of collapsed repeats. l.mu is held.
func (l *failureLog) take(now time.Time) stormSummary {
	return stormSummary{err: l.last, repeated: int(l.repeated.Swap(0)), in: now.Sub(l.lastAt)}
}

func (s stormSummary) log(ctx context.Context, log *slog.Logger) {
	if s.repeated == 0 {
		return
	}
	log.LogAttrs(ctx, slog.LevelError, "iteration failed repeatedly",
		slog.String("err", s.err), slog.Int("repeated", s.repeated), slog.Duration("in", s.in))
}
