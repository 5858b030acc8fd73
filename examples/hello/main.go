// Command hello is the Backi.Continuous demo in Go: a web app that answers
// "Hello World!" on / while a background worker logs Running and Done every
// second. /livez and /readyz answer Kubernetes probes and /status shows the
// worker's status as JSON, /metrics its Prometheus metrics, /backi is a
// live status page to open in a browser, with buttons that pause, resume and
// run the worker, as POST /backi/control/workers/hello/pause (or resume, or
// run) does. Ctrl+C or SIGTERM stops everything cleanly.
//
//	go run ./examples/hello [-addr :8080]
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/backiprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// iteration is one turn of the worker, built fresh for every turn.
type iteration struct{ log *slog.Logger }

func (it iteration) Run(ctx context.Context) error {
	it.log.Info("Running")
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	it.log.Info("Done")
	return nil
}

// OnFailure is called for every failure of the iteration: log it and wait
// 500 ms before the next one, as the original does.
func (iteration) OnFailure(ctx context.Context, f backi.Failure) (time.Duration, error) {
	f.Logger.Warn("iteration error, retrying in 500ms", "err", f.Err)
	return 500 * time.Millisecond, nil
}

func main() {
	addr := flag.String("addr", ":8080", "address to serve HTTP on")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	slog.SetDefault(log)

	metrics := backiprom.New()
	registry := prometheus.NewRegistry()
	registry.MustRegister(metrics)
	page := backihttp.NewPage()
	host := backi.NewHost(backi.WithLogger(log), backi.WithStuckAfter(time.Minute), backi.WithObserver(backi.Observers(metrics, page)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello World!")
	})
	mux.Handle("GET /livez", backihttp.Liveness(host, backihttp.WithFailureThreshold(10)))
	mux.Handle("GET /readyz", backihttp.Readiness(host))
	mux.Handle("GET /status", backihttp.Status(host))
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	// The page's buttons, and curl -X POST localhost:8080/backi/control/workers/hello/pause,
	// pause, resume and run the worker. A real service mounts these behind its own authentication.
	mux.Handle("GET /backi", page.Handler(host, backihttp.PageControls("/backi/control")))
	mux.Handle("/backi/control/", http.StripPrefix("/backi/control", backihttp.Control(host)))

	host.Add(
		backi.HTTPServer(&http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}),
		backi.Continuous("hello", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			return iteration{log: log.With("worker", "hello")}, nil
		}),
	)
	if err := host.Run(context.Background()); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("host failed", "err", err)
		os.Exit(1)
	}
}
