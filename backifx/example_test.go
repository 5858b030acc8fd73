package backifx_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backifx"
	"github.com/backi-go/backi/backihttp"
	"go.uber.org/fx"
)

// An fx app with a Loop worker and an HTTP server whose handlers read the
// host. A program calls app.Run(), which starts the app, waits for SIGINT or
// SIGTERM and stops it; the example starts and stops it itself.
func Example() {
	sent := make(chan struct{})
	var once sync.Once
	var host *backi.Host
	app := fx.New(
		fx.NopLogger, // fx's own log of what it provides and runs
		backifx.Module(backi.WithLogger(slog.New(slog.DiscardHandler))),
		fx.Provide(
			backifx.AsWorker(func() *backi.Worker {
				return backi.Loop("outbox", func(ctx context.Context) error {
					once.Do(func() {
						fmt.Println("outbox: sent the pending messages")
						close(sent)
					})
					return backi.ErrNoWork // idle until there is more
				})
			}),
			backifx.AsService(func(h *backi.Host) backi.Service {
				mux := http.NewServeMux()
				mux.Handle("GET /readyz", backihttp.Readiness(h))
				mux.Handle("GET /status", backihttp.Status(h))
				return backi.HTTPServer(&http.Server{Addr: "127.0.0.1:0", Handler: mux, ReadHeaderTimeout: 5 * time.Second})
			}),
		),
		fx.Populate(&host),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	<-sent
	fmt.Println("host:", host.State())
	if err := app.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("host:", host.State())
	// Output:
	// outbox: sent the pending messages
	// host: running
	// host: stopped
}

// A worker whose failure stops the host shuts the app down with exit code 1,
// and the app's Stop returns the worker's error. Under app.Run, the program
// then exits with status 1.
func ExampleModule() {
	feed := make(chan error)
	app := fx.New(
		fx.NopLogger,
		backifx.Module(
			backi.WithShutdownTimeout(5*time.Second),
			backi.WithLogger(slog.New(slog.DiscardHandler)),
		),
		fx.Provide(backifx.AsWorker(func() *backi.Worker {
			return backi.Loop("importer", func(ctx context.Context) error {
				select {
				case err := <-feed:
					return backi.Stop(err) // ends the worker, and so the host
				case <-ctx.Done():
					return nil
				}
			})
		})),
	)
	ctx := context.Background()
	wait := app.Wait()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	feed <- errors.New("the feed is gone")
	fmt.Println("exit code", (<-wait).ExitCode)
	fmt.Println(app.Stop(ctx))
	// Output:
	// exit code 1
	// backifx: host: backi: service "importer": the feed is gone
}
