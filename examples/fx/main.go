// Command fx is the hello demo as an uber-go/fx app: "Hello World!" on /
// while a background worker logs Running and Done every second, with /livez,
// /readyz and /status reading the host. fx starts the host with the app and
// stops it on Ctrl+C or SIGTERM; the program exits with status 0 after a
// clean stop, and 1 when the host stops on its own with an error.
//
//	go run ./examples/fx [-addr :8080]
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
	"github.com/backi-go/backi/backifx"
	"github.com/backi-go/backi/backihttp"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
)

// Greeter is what the worker needs: here only a logger, as a database would
// be in a real service.
type Greeter struct{ log *slog.Logger }

// NewGreeter is an ordinary constructor of the graph.
func NewGreeter(log *slog.Logger) *Greeter { return &Greeter{log: log.With("worker", "hello")} }

// Greet is one turn of the worker.
func (g *Greeter) Greet(ctx context.Context) error {
	g.log.Info("Running")
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	g.log.Info("Done")
	return nil
}

// NewMux serves the greeting and what the host knows.
func NewMux(h *backi.Host) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello World!")
	})
	mux.Handle("GET /livez", backihttp.Liveness(h, backihttp.WithFailureThreshold(10)))
	mux.Handle("GET /readyz", backihttp.Readiness(h))
	mux.Handle("GET /status", backihttp.Status(h))
	return mux
}

func main() {
	addr := flag.String("addr", ":8080", "address to serve HTTP on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))

	fx.New(
		fx.Supply(log),
		fx.WithLogger(func(l *slog.Logger) fxevent.Logger {
			fl := &fxevent.SlogLogger{Logger: l}
			fl.UseLogLevel(slog.LevelDebug) // fx's own events; its errors stay at Error
			return fl
		}),
		backifx.Module(backi.WithStuckAfter(time.Minute)),
		fx.Provide(
			func(l *slog.Logger) backifx.HostOptions { return backifx.HostOptions{backi.WithLogger(l)} },
			NewGreeter,
			NewMux,
			backifx.AsWorker(func(g *Greeter) *backi.Worker {
				return backi.Loop("hello", g.Greet)
			}),
			backifx.AsService(func(mux *http.ServeMux) backi.Service {
				return backi.HTTPServer(&http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second})
			}),
		),
	).Run()
}
