package backi_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/backi-go/backi"
)

func ExampleEvery() {
	s := backi.Every(15 * time.Minute) // on the wall clock's quarter hours
	t := time.Date(2026, 11, 24, 9, 7, 0, 0, time.UTC)
	for range 3 {
		t = s.Next(t)
		fmt.Println(t.Format("15:04"))
	}
	// Output:
	// 09:15
	// 09:30
	// 09:45
}

func ExampleEveryFrom() {
	start := time.Date(2026, 11, 24, 9, 7, 0, 0, time.UTC)
	s := backi.EveryFrom(start, 15*time.Minute) // anchored at the start instead
	fmt.Println(s.Next(start).Format("15:04"))
	// Output: 09:22
}

func ExampleDelay() {
	s := backi.Delay(time.Second) // a second after each run ends
	end := time.Date(2026, 11, 24, 9, 0, 3, 0, time.UTC)
	fmt.Println(s.Next(end).Format("15:04:05"))
	// Output: 09:00:04
}

func ExampleWithSchedule() {
	runs := 0
	w := backi.Loop("cleanup", func(ctx context.Context) error {
		runs++
		fmt.Println("cleanup run", runs)
		if runs == 3 {
			return backi.Stop(nil)
		}
		return nil
	},
		backi.WithSchedule(backi.Every(10*time.Millisecond)),
		backi.WithRunAtStart(), // once now, then on the schedule
		backi.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// cleanup run 1
	// cleanup run 2
	// cleanup run 3
}

func ExampleWithScheduleStore() {
	// One store shared by the lives of a worker: a real service would use a
	// store that outlives the process.
	store := &backi.MemoryStore{}
	day := 24 * time.Hour
	_ = store.SaveRun(context.Background(), "weekly report", time.Now().Add(-8*day))

	w := backi.Loop("weekly report", func(ctx context.Context) error {
		fmt.Println("report sent: the run missed while down is made up once, at start")
		return backi.Stop(nil)
	},
		backi.WithSchedule(backi.Every(7*day)),
		backi.WithScheduleStore(store),
		backi.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output: report sent: the run missed while down is made up once, at start
}
