package pgqueue_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func Example() {
	url := os.Getenv("BACKI_PG_URL")
	if url == "" {
		url = pgtest.DefaultURL
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	q, err := pgqueue.New(pool, pgqueue.WithSchema("pgqueue_example"))
	if err != nil {
		panic(err)
	}
	if err := q.Migrate(ctx); err != nil {
		panic(err)
	}
	defer pool.Exec(ctx, `DROP SCHEMA pgqueue_example CASCADE`)

	// The job exists if and only if the transaction commits.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := q.Enqueue(ctx, tx, pgqueue.NewJob{Queue: "emails", Payload: []byte(`{"to":"ada@example.com"}`)})
		return err
	})
	if err != nil {
		panic(err)
	}

	// The worker runs until its context ends: here, after the first job.
	ctx, stop := context.WithCancel(ctx)
	w := pgqueue.Worker(q, "emails", func(_ context.Context, job *pgqueue.Job) error {
		fmt.Printf("sending %s, attempt %d\n", job.Payload, job.Attempt)
		stop()
		return nil
	}, pgqueue.WithWorkerOptions(backi.WithLogger(slog.New(slog.DiscardHandler))))
	fmt.Println(w.Run(ctx))
	// Output:
	// sending {"to":"ada@example.com"}, attempt 1
	// <nil>
}
