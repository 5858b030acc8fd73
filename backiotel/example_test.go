package backiotel_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backiotel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func Example() {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())

	obs, err := backiotel.New(backiotel.WithTracerProvider(tp)) // metrics go to the global MeterProvider
	if err != nil {
		fmt.Println(err)
		return
	}
	n := 0
	w := backi.Loop("indexer", func(ctx context.Context) error {
		// ctx carries the iteration's span: what the iteration calls is traced beneath it.
		if n++; n == 2 {
			return backi.Stop(nil)
		}
		return nil
	}, backi.WithObserver(obs), backi.WithLogger(slog.New(slog.DiscardHandler)))
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	for _, s := range spans.GetSpans() {
		fmt.Println(s.Name)
	}
	// Output:
	// indexer
	// indexer
}
