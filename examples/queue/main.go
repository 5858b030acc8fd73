// Command queue shows pgqueue: an HTTP endpoint that takes orders, each
// enqueuing a receipt job in the order's own transaction, and workers on
// every replica that send the receipts. Start three replicas, on ports 8081
// to 8083, post orders to any of them, kill one with kill -9 (its pid is in
// its log), and every receipt is still sent, once:
//
//	go run ./examples/queue -addr :8081 &
//	go run ./examples/queue -addr :8082 &
//	go run ./examples/queue -addr :8083 &
//	for i in $(seq 100); do curl -s -X POST localhost:8081/orders -d "buyer$i@example.com"; done
//
// The database is $DATABASE_URL, or the local server; the tables go in the
// schema examples_queue (or -schema).
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/pgqueue"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	addr := flag.String("addr", ":8081", "address to serve HTTP on")
	schema := flag.String("schema", "examples_queue", "schema of the orders, the receipts and the queue")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("pid", os.Getpid())
	if err := run(*addr, *schema, log); err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}

func run(addr, schema string, log *slog.Logger) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := pgqueue.New(pool, pgqueue.WithSchema(schema), pgqueue.WithLogger(log))
	if err != nil {
		return err
	}
	if err := q.Migrate(ctx); err != nil {
		return err
	}
	s := pgx.Identifier{schema}.Sanitize()
	if _, err := pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS `+s+`.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
		CREATE TABLE IF NOT EXISTS `+s+`.receipts (order_id bigint PRIMARY KEY, sent_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}

	mux := http.NewServeMux()
	// An order and its receipt job commit together, or neither does.
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		email, _ := io.ReadAll(io.LimitReader(r.Body, 320))
		var id int64
		err := pgx.BeginFunc(r.Context(), pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(r.Context(), `INSERT INTO `+s+`.orders (email) VALUES ($1) RETURNING id`, string(email)).Scan(&id); err != nil {
				return err
			}
			_, err := q.Enqueue(r.Context(), tx, pgqueue.NewJob{Queue: "receipts", Payload: []byte(strconv.FormatInt(id, 10))})
			return err
		})
		if err != nil {
			http.Error(w, "could not take the order", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "order "+strconv.FormatInt(id, 10)+"\n")
	})

	// The receipt is recorded, and the job deleted, in one transaction: a
	// receipt is sent once, even when its job runs again after a crash.
	send := func(ctx context.Context, job *pgqueue.Job) error {
		order, err := strconv.ParseInt(string(job.Payload), 10, 64)
		if err != nil {
			return pgqueue.Cancel(err) // a bad payload: dead at once
		}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+s+`.receipts (order_id) VALUES ($1)`, order); err != nil {
				return err
			}
			log.Info("receipt sent", "order", order, "attempt", job.Attempt)
			return job.Complete(ctx, tx)
		})
	}

	// The queues' stats and dead jobs: GET /backi/queues, GET
	// /backi/queues/receipts/dead, POST .../dead/{id}/retry. A real service
	// mounts it behind its own authentication.
	queues := http.StripPrefix("/backi", backihttp.QueueControl(pgqueue.ForHTTP(q)))
	mux.Handle("/backi/queues", queues)
	mux.Handle("/backi/queues/", queues)

	host := backi.NewHost(backi.WithLogger(log))
	host.Add(
		backi.HTTPServer(&http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}),
		q, // listens for new jobs, and wakes the workers
		pgqueue.Worker(q, "receipts", send, pgqueue.WithBatch(20), pgqueue.WithLease(5*time.Second),
			pgqueue.WithWorkerOptions(backi.WithConcurrency(2))),
	)
	log.Info("taking orders", "addr", addr)
	if err := host.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
