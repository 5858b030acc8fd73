package backi

import (
	"testing"
	"time"
)

func TestAligned(t *testing.T) {
	// now is 1.234567 s past a whole second.
	now := time.Date(2026, 1, 1, 0, 0, 1, 234_567_000, time.UTC)
	for _, tc := range []struct {
		d, want time.Duration // want: the wait from now once aligned
	}{
		{10 * time.Millisecond, 10 * time.Millisecond},         // under 16 ms: no grain
		{16 * time.Millisecond, 16*time.Millisecond + 433_000}, // grain 1 ms: ends at 1.251 s
		{500 * time.Millisecond, 505_433_000},                  // grain 20 ms: ends at 1.740 s
		{time.Second, time.Second + 15_433_000},                // grain 50 ms: ends at 2.250 s
		{2 * time.Second, 2*time.Second + 65_433_000},          // grain 100 ms: ends at 3.300 s
		{30 * time.Second, 30*time.Second + 765_433_000},       // grain 1 s (WaitGrain): ends at 32 s
		{time.Hour, time.Hour + 765_433_000},                   // grain capped at WaitGrain
	} {
		got := aligned(now, tc.d)
		if got != tc.want {
			t.Errorf("aligned(%v) = %v, want %v", tc.d, got, tc.want)
		}
		if got < tc.d || got > tc.d+tc.d/16 {
			t.Errorf("aligned(%v) = %v, outside [d, d+d/16]", tc.d, got)
		}
	}
	// A wait that already ends on the grid is left as it is.
	if got := aligned(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Second); got != time.Second {
		t.Errorf("aligned on the grid = %v, want 1s", got)
	}
}
