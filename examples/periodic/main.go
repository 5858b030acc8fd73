// Command periodic runs two periodic workers beside an HTTP server in one
// host: a cleanup every 10 seconds, on the wall clock's :00, :10, :20 …, and
// a report on a cron schedule, every minute on weekdays. GET / answers
// "Hello World!"; POST /report runs the report now without moving its
// schedule. Ctrl+C or SIGTERM stops everything cleanly.
//
//	go run ./examples/periodic [-addr :8080]
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/cron"
)

func main() {
	addr := flag.String("addr", ":8080", "address to serve HTTP on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))

	cleanup := backi.Loop("cleanup", func(ctx context.Context) error {
		log.Info("removing expired sessions")
		return nil
	}, backi.WithSchedule(backi.Every(10*time.Second)))

	report := backi.Loop("report", func(ctx context.Context) error {
		log.Info("sending the report")
		return nil
	}, backi.WithSchedule(cron.MustParse("0 * * * * MON-FRI")), backi.WithJitter(2*time.Second))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello World!")
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		report.Wake()
		io.WriteString(w, "report requested; next scheduled run at "+report.Status().NextRun.Format(time.RFC3339)+"\n")
	})

	host := backi.NewHost(backi.WithLogger(log))
	host.Add(backi.HTTPServer(&http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}), cleanup, report)
	if err := host.Run(context.Background()); err != nil {
		log.Error("host failed", "err", err)
		os.Exit(1)
	}
}
