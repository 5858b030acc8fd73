package backiprom_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backiprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func Example() {
	metrics := backiprom.New()
	registry := prometheus.NewRegistry()
	registry.MustRegister(metrics) // serve it with promhttp.HandlerFor(registry, ...)

	n := 0
	w := backi.Loop("mailer", func(ctx context.Context) error {
		if n++; n == 3 {
			return backi.Stop(nil)
		}
		return nil
	}, backi.WithObserver(metrics), backi.WithLogger(slog.New(slog.DiscardHandler)))
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
	}

	err := testutil.GatherAndCompare(registry, strings.NewReader(`
# HELP backi_iterations_total Finished iterations of a worker, by result.
# TYPE backi_iterations_total counter
backi_iterations_total{result="failure",worker="mailer"} 0
backi_iterations_total{result="no_work",worker="mailer"} 0
backi_iterations_total{result="shutdown",worker="mailer"} 0
backi_iterations_total{result="stopped",worker="mailer"} 1
backi_iterations_total{result="success",worker="mailer"} 2
`), "backi_iterations_total")
	fmt.Println(err)
	// Output: <nil>
}
