package backi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// synctest's clock starts at 2000-01-01 00:00:00 UTC, a Saturday.
var epoch2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// runFor runs w for d and returns when each iteration started, as offsets
// from the start.
func runFor(t *testing.T, d time.Duration, fn func(n int) error, opts ...backi.Option) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	start := time.Now()
	var starts []time.Duration
	w := backi.Loop("periodic", func(ctx context.Context) error {
		starts = append(starts, time.Since(start))
		return fn(len(starts))
	}, append([]backi.Option{backi.WithLogger(quiet)}, opts...)...)
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return starts
}

func ok(int) error { return nil }

func mins(ds ...float64) string {
	var out []time.Duration
	for _, d := range ds {
		out = append(out, time.Duration(d*float64(time.Minute)))
	}
	return fmt.Sprint(out)
}

func TestEveryMinuteRuns60TimesAnHour(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, time.Hour+time.Second, ok, backi.WithSchedule(backi.Every(time.Minute)))
		if len(starts) != 60 {
			t.Fatalf("%d runs in an hour, want 60", len(starts))
		}
		for i, s := range starts {
			if s != time.Duration(i+1)*time.Minute {
				t.Fatalf("run %d started at %v, want on the minute", i, s)
			}
		}
	})
}

func TestOverrunSkipsTicksInsteadOfBursting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		starts := runFor(t, 5*time.Minute+time.Second, func(n int) error {
			if n == 1 {
				time.Sleep(150 * time.Second) // overruns the 2:00 and 3:00 ticks
			}
			return nil
		}, backi.WithSchedule(backi.Every(time.Minute)), backi.WithLogger(log))
		if got, want := fmt.Sprint(starts), mins(1, 3.5, 4, 5); got != want {
			t.Fatalf("runs at %s, want %s", got, want)
		}
		runs := rec.find("scheduled run")
		if len(runs) != 4 {
			t.Fatalf("%d run records, want 4", len(runs))
		}
		if due, late := runs[1].Attrs["due"].Time(), runs[1].Attrs["late"].Duration(); !due.Equal(epoch2000.Add(3*time.Minute)) || late != 30*time.Second {
			t.Fatalf("the catch-up run was due %v, %v late; want 00:03:00, 30s late", due, late)
		}
	})
}

func TestEveryIsAnchoredToTheWallClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(7 * time.Minute) // the process starts at 00:07
		starts := runFor(t, time.Hour, ok, backi.WithSchedule(backi.Every(15*time.Minute)))
		// 00:15, 00:30, 00:45, 01:00 are 8, 23, 38 and 53 minutes after the start.
		if got, want := fmt.Sprint(starts), mins(8, 23, 38, 53); got != want {
			t.Fatalf("runs at %s after 00:07, want %s", got, want)
		}
	})
}

func TestEveryFromAnchorsAtTheGivenTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(7 * time.Minute)
		starts := runFor(t, 31*time.Minute, ok, backi.WithSchedule(backi.EveryFrom(time.Now(), 15*time.Minute)))
		if got, want := fmt.Sprint(starts), mins(15, 30); got != want {
			t.Fatalf("runs at %s, want %s", got, want)
		}
	})
}

func TestDelayWaitsAfterEachRunEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, 40*time.Second, func(int) error { time.Sleep(10 * time.Second); return nil },
			backi.WithSchedule(backi.Delay(5*time.Second)))
		if got, want := fmt.Sprint(starts), fmt.Sprint([]time.Duration{5 * time.Second, 20 * time.Second, 35 * time.Second}); got != want {
			t.Fatalf("runs at %s, want %s", got, want)
		}
	})
}

func TestRunAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, 2*time.Minute+time.Second, ok, backi.WithSchedule(backi.Every(time.Minute)), backi.WithRunAtStart())
		if got, want := fmt.Sprint(starts), mins(0, 1, 2); got != want {
			t.Fatalf("runs at %s, want %s", got, want)
		}
	})
}

func TestJitterStaysWithinItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, 100*time.Minute, ok, backi.WithSchedule(backi.Every(time.Minute)), backi.WithJitter(10*time.Second))
		if len(starts) != 99 {
			t.Fatalf("%d runs, want 99", len(starts))
		}
		offsets := map[time.Duration]bool{}
		for i, s := range starts {
			off := s - time.Duration(i+1)*time.Minute
			if off < 0 || off >= 10*time.Second {
				t.Fatalf("run %d started %v after its minute, want within [0, 10s)", i, off)
			}
			offsets[off] = true
		}
		if len(offsets) < 50 {
			t.Fatalf("only %d distinct delays in 99 runs: no jitter", len(offsets))
		}
	})
}

func TestFailureRetriesNeverDelayTheNextRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, 3*time.Minute+time.Second, func(int) error { return errFail },
			backi.WithSchedule(backi.Every(time.Minute)), backi.WithBackoff(backi.ConstantBackoff(25*time.Second)))
		// Retries at +25s and +50s (each up to a tick late); the third would
		// be at 2:15, after the 2:00 run.
		if want := []time.Duration{
			60 * time.Second, 85 * time.Second, 110 * time.Second,
			120 * time.Second, 145 * time.Second, 170 * time.Second, 180 * time.Second,
		}; !allLasted(starts, want) {
			t.Fatalf("runs at %v, want %v, each up to a tick later", starts, want)
		}
	})
}

func TestARetryThatSucceedsKeepsTheSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, 2*time.Minute+time.Second, func(n int) error {
			if n == 1 {
				return errFail
			}
			return nil
		}, backi.WithSchedule(backi.Every(time.Minute)), backi.WithBackoff(backi.ConstantBackoff(10*time.Second)))
		if want := []time.Duration{60 * time.Second, 70 * time.Second, 120 * time.Second}; !allLasted(starts, want) {
			t.Fatalf("runs at %v, want %v, each up to a tick later", starts, want)
		}
	})
}

func TestWakeRunsNowWithoutMovingTheSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Hour+time.Second)
		defer cancel()
		start := time.Now()
		var starts []time.Duration
		w := backi.Loop("hourly", func(ctx context.Context) error {
			starts = append(starts, time.Since(start))
			return nil
		}, backi.WithSchedule(backi.Every(time.Hour)), backi.WithLogger(quiet))
		time.AfterFunc(10*time.Minute, w.Wake)
		time.AfterFunc(11*time.Minute, func() {
			if next := w.Status().NextRun; !next.Equal(epoch2000.Add(time.Hour)) {
				t.Errorf("NextRun after a Wake = %v, want 01:00", next)
			}
		})
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(starts), mins(10, 60, 120); got != want {
			t.Fatalf("runs at %s, want %s", got, want)
		}
	})
}

func TestPeriodicWorkerStopsPromptlyInAHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		h := quietHost()
		h.Add(backi.Loop("hourly", func(ctx context.Context) error { return nil },
			backi.WithSchedule(backi.Every(time.Hour)), backi.WithLogger(quiet)))
		time.AfterFunc(10*time.Minute, cancel)
		start := time.Now()
		if err := h.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 10*time.Minute {
			t.Fatalf("the host stopped %v after the start, want at the 10m cancel", d)
		}
	})
}

// process runs a weekly worker with store from now for up, like one life of a
// process, and returns how many runs it made.
func process(t *testing.T, store backi.ScheduleStore, up time.Duration, opts ...backi.Option) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), up)
	defer cancel()
	n := 0
	w := backi.Loop("weekly report", func(ctx context.Context) error { n++; return nil },
		append([]backi.Option{backi.WithSchedule(backi.Every(7 * 24 * time.Hour)), backi.WithScheduleStore(store), backi.WithLogger(quiet)}, opts...)...)
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWeeklyJobSurvivesDailyRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each day the process is down from 23:30 to 00:30, across the
		// weekly boundary (Thursdays 00:00 UTC).
		time.Sleep(30 * time.Minute)
		store := &backi.MemoryStore{}
		runs := 0
		for range 21 {
			runs += process(t, store, 23*time.Hour)
			time.Sleep(time.Hour)
		}
		if runs != 3 {
			t.Fatalf("%d runs in three weeks of daily restarts, want 3", runs)
		}
	})
}

func TestMissedRunsRunOnceAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &backi.MemoryStore{}
		if n := process(t, store, 7*24*time.Hour); n != 1 {
			t.Fatalf("first week: %d runs, want 1", n)
		}
		time.Sleep(7 * 24 * time.Hour) // down for a week: one run missed
		start := time.Now()
		var first time.Duration
		n := 0
		ctx, cancel := context.WithTimeout(t.Context(), 3*24*time.Hour)
		w := backi.Loop("weekly report", func(ctx context.Context) error {
			if n++; n == 1 {
				first = time.Since(start)
			}
			return nil
		}, backi.WithSchedule(backi.Every(7*24*time.Hour)), backi.WithScheduleStore(store), backi.WithLogger(quiet))
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if n != 1 || first != 0 {
			t.Fatalf("after a week down: %d runs, the first %v after start; want one, at once", n, first)
		}
		time.Sleep(21 * 24 * time.Hour) // down for three weeks: still one run
		if n := process(t, store, time.Hour); n != 1 {
			t.Fatalf("after three weeks down: %d runs at start, want 1", n)
		}
		time.Sleep(14 * 24 * time.Hour)
		if n := process(t, store, time.Hour, backi.WithSkipMissed()); n != 0 {
			t.Fatalf("WithSkipMissed: %d runs at start, want 0", n)
		}
	})
}

func TestWithoutAStoreARestartedWeeklyJobStarves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(30 * time.Minute)
		runs := 0
		for range 21 {
			runs += process(t, &backi.MemoryStore{}, 23*time.Hour) // a fresh store each life
			time.Sleep(time.Hour)
		}
		if runs != 0 {
			t.Fatalf("%d runs; this test shows why the store exists: want 0", runs)
		}
	})
}

type failingStore struct{ backi.MemoryStore }

var errStore = errors.New("store down")

func (f *failingStore) LastRun(ctx context.Context, name string) (time.Time, error) {
	return time.Time{}, errStore
}

func TestAStoreThatCannotBeReadIsAFailureRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		w := backi.Loop("stored", func(ctx context.Context) error { return nil },
			backi.WithSchedule(backi.Every(time.Minute)), backi.WithScheduleStore(&failingStore{}),
			backi.WithBackoff(backi.ConstantBackoff(time.Second)), backi.WithLogger(log))
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if st := w.Status(); st.Failures < 9 || !errors.Is(st.LastError, errStore) {
			t.Fatalf("status %+v, want repeated store failures", st)
		}
		if errs := rec.atLeast(slog.LevelError); len(errs) < 9 || !strings.Contains(errs[0], "store down") {
			t.Fatalf("store failures not logged: %v", errs)
		}
	})
}

func TestScheduleConfigurationErrors(t *testing.T) {
	fn := func(context.Context) error { return nil }
	for _, tc := range []struct {
		opts []backi.Option
		want string
	}{
		{[]backi.Option{backi.WithSchedule(nil)}, "WithSchedule(nil)"},
		{[]backi.Option{backi.WithSchedule(backi.Every(0))}, "WithSchedule: Every(0s): need a positive period"},
		{[]backi.Option{backi.WithSchedule(backi.EveryFrom(time.Now(), -time.Second))}, "Every(-1s)"},
		{[]backi.Option{backi.WithSchedule(backi.Delay(0))}, "WithSchedule: Delay(0s)"},
		{[]backi.Option{backi.WithSchedule(backi.Every(time.Minute)), backi.WithJitter(0)}, "WithJitter(0s)"},
		{[]backi.Option{backi.WithJitter(time.Second)}, "WithJitter: needs WithSchedule"},
		{[]backi.Option{backi.WithRunAtStart()}, "WithRunAtStart: needs WithSchedule"},
		{[]backi.Option{backi.WithSkipMissed()}, "WithSkipMissed: needs WithSchedule"},
		{[]backi.Option{backi.WithScheduleStore(&backi.MemoryStore{})}, "WithScheduleStore: needs WithSchedule"},
		{[]backi.Option{backi.WithScheduleStore(nil)}, "WithScheduleStore(nil)"},
		{[]backi.Option{backi.WithSchedule(backi.Every(time.Minute)), backi.WithConcurrency(2)}, "not WithConcurrency(2)"},
	} {
		err := backi.Loop("w", fn, tc.opts...).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `backi: worker "w": `) {
			t.Errorf("Run = %v, want an error containing %q", err, tc.want)
		}
	}
}

// endOf is a schedule with a last run.
type endOf struct{ last time.Time }

func (e endOf) Next(after time.Time) time.Time {
	if n := after.Truncate(time.Minute).Add(time.Minute); !n.After(e.last) {
		return n
	}
	return time.Time{}
}

func TestAScheduleWithoutFurtherRunsEndsTheWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts := runFor(t, time.Hour, ok, backi.WithSchedule(endOf{epoch2000.Add(3 * time.Minute)}))
		if got, want := fmt.Sprint(starts), mins(1, 2, 3); got != want {
			t.Fatalf("runs at %s, want %s and then the end", got, want)
		}
	})
}

func TestScheduledForTellsTheDueTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var dues []string
		var w *backi.Worker
		w = backi.Loop("report", func(ctx context.Context) error {
			if due, ok := backi.ScheduledFor(ctx); ok {
				dues = append(dues, fmt.Sprint(due.Sub(epoch2000)))
			} else {
				dues = append(dues, "woken")
			}
			if len(dues) == 1 {
				go w.Wake()
			}
			if len(dues) == 3 {
				return backi.Stop(nil)
			}
			return nil
		}, backi.WithSchedule(backi.Every(time.Minute)), backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(dues), "[1m0s woken 2m0s]"; got != want {
			t.Fatalf("due times %s, want %s", got, want)
		}
	})
}

// TestARunCompletedDuringShutdownIsRecorded stops the worker while a run is
// in flight; the run completes, and the store must know it.
func TestARunCompletedDuringShutdownIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &ctxStore{}
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("report", func(ctx context.Context) error {
			cancel()                // shutdown begins while the run is in flight
			time.Sleep(time.Second) // and the run completes anyway
			return nil
		}, backi.WithSchedule(backi.Every(time.Minute)), backi.WithScheduleStore(store), backi.WithLogger(quiet))
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if last, _ := store.LastRun(context.Background(), "report"); !last.Equal(epoch2000.Add(time.Minute)) {
			t.Fatalf("last run recorded %v, want the run due at 00:01", last)
		}
	})
}

// ctxStore is a MemoryStore that, like a database, refuses a done context.
type ctxStore struct{ backi.MemoryStore }

func (s *ctxStore) SaveRun(ctx context.Context, name string, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.MemoryStore.SaveRun(ctx, name, t)
}

func TestStatusDescribesTheSchedule(t *testing.T) {
	for _, c := range []struct {
		s    backi.Schedule
		want string
	}{
		{nil, ""},
		{backi.Every(15 * time.Minute), "every 15m0s"},
		{backi.EveryFrom(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Hour), "every 1h0m0s from 2026-01-02T03:04:05Z"},
		{backi.Delay(time.Second), "1s after each run"},
		{scheduleFunc(func(t time.Time) time.Time { return t }), "custom"},
		{panickyString{}, "custom"},
	} {
		var opts []backi.Option
		if c.s != nil {
			opts = append(opts, backi.WithSchedule(c.s))
		}
		w := backi.Loop("job", func(context.Context) error { return nil }, opts...)
		if got := w.Status().Schedule; got != c.want {
			t.Errorf("%T: Schedule %q, want %q", c.s, got, c.want)
		}
	}
}

type panickyString struct{ backi.Schedule }

func (panickyString) Next(t time.Time) time.Time { return t.Add(time.Hour) }
func (panickyString) String() string             { panic("String bug") }

type scheduleFunc func(time.Time) time.Time

func (f scheduleFunc) Next(t time.Time) time.Time { return f(t) }
