package pgleader_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/pgleader"
)

// The examples need a PostgreSQL server, so go test compiles them without
// running them; examples/singleton runs one.
const dsn = "postgres://app@db.internal:5432/app"

// relay stands for work that must run on one replica at a time.
func relay(ctx context.Context) error { return backi.ErrNoWork }

func ExampleNew() {
	// Every replica runs this; one of them leads and relays, and another takes
	// over within about a second when it dies.
	elector, err := pgleader.New(dsn, "outbox relay")
	if err != nil {
		log.Fatal(err)
	}
	h := backi.NewHost()
	h.Add(backi.Loop("outbox relay", relay, backi.WithLeader(elector)))
	if err := h.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func ExampleNewSession() {
	// Several singletons on one connection, checked in one query for all:
	// a failed check ends every term held on it at once. Here the server is
	// far away (round trips near 300 ms), and each iteration may need up to
	// 2 s to stop once its term ends: the next leader waits that much longer
	// after a crash.
	s, err := pgleader.NewSession(dsn,
		pgleader.WithCheckPeriod(time.Second), pgleader.WithCheckTimeout(500*time.Millisecond),
		pgleader.WithNotice(2*time.Second),
		pgleader.WithLogger(slog.Default().With("component", "election")))
	if err != nil {
		log.Fatal(err)
	}
	h := backi.NewHost()
	for _, name := range []string{"outbox relay", "cache warmer"} {
		elector, err := s.Elector(name)
		if err != nil {
			log.Fatal(err)
		}
		h.Add(backi.Loop(name, relay, backi.WithLeader(elector)))
	}
	if err := h.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func ExampleNewStore() {
	// A daily run, done once per day across replicas, restarts and
	// failovers: the leader records each run, fenced by its term.
	elector, err := pgleader.New(dsn, "daily report")
	if err != nil {
		log.Fatal(err)
	}
	store, err := pgleader.NewStore(dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close(context.Background())

	report := backi.Loop("daily report", func(ctx context.Context) error {
		due, _ := backi.ScheduledFor(ctx)
		log.Printf("report for %s", due.Format(time.DateOnly)) // key its effects by due
		return nil
	},
		backi.WithSchedule(backi.Every(24*time.Hour)),
		backi.WithLeader(elector),
		backi.WithScheduleStore(store),
	)
	h := backi.NewHost()
	h.Add(report)
	if err := h.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}
