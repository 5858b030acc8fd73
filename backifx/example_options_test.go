package backifx_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backifx"
	"go.uber.org/fx"
)

// Host options built from the graph, here a logger another module provides,
// come as one HostOptions value.
func ExampleHostOptions() {
	started := make(chan struct{})
	app := fx.New(
		fx.NopLogger,
		backifx.Module(),
		fx.Provide(
			func() *slog.Logger { // as a logging module would
				return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
					ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
						if a.Key == slog.TimeKey || a.Key == "shutdown" { // what changes from run to run
							return slog.Attr{}
						}
						return a
					},
				}))
			},
			func(l *slog.Logger) backifx.HostOptions {
				return backifx.HostOptions{backi.WithLogger(l)}
			},
			backifx.AsWorker(func() *backi.Worker {
				return backi.Loop("w", func(ctx context.Context) error {
					close(started)
					<-ctx.Done()
					return nil
				}, backi.WithLogger(slog.New(slog.DiscardHandler))) // the worker's own records, elsewhere
			}),
		),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	<-started
	if err := app.Stop(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// level=INFO msg="host started" services=1
	// level=INFO msg="host stopping" reason="backifx: the fx app is stopping"
	// level=INFO msg="service ended" service=w
	// level=INFO msg="host stopped"
}
