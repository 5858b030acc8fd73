package backiotel_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backiotel"
	"github.com/backi-go/backi/internal/leakcheck"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestSpansAndMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spans := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		obs, err := backiotel.New(backiotel.WithTracerProvider(tp), backiotel.WithMeterProvider(mp))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		var insideSpan bool
		w := backi.Loop("mailer", func(ctx context.Context) error {
			insideSpan = trace.SpanFromContext(ctx).SpanContext().IsValid()
			time.Sleep(time.Second)
			switch n++; n {
			case 1:
				return nil
			case 2, 3:
				return errors.New("smtp down")
			}
			return backi.Stop(nil)
		}, backi.WithObserver(obs), backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !insideSpan {
			t.Fatal("the iteration's context carries no span")
		}

		got := spans.GetSpans()
		if len(got) != 4 {
			t.Fatalf("%d spans, want 4", len(got))
		}
		for i, s := range got {
			if s.Name != "mailer" || s.EndTime.Sub(s.StartTime) != time.Second {
				t.Fatalf("span %d: %s lasting %v", i, s.Name, s.EndTime.Sub(s.StartTime))
			}
			failed := i == 1 || i == 2
			if failed != (s.Status.Code == codes.Error) || failed != (len(s.Events) == 1) {
				t.Fatalf("span %d: status %v, %d events", i, s.Status, len(s.Events))
			}
			if !hasAttr(s.Attributes, attribute.Int64("backi.iteration", int64(i+1))) {
				t.Fatalf("span %d attributes %v", i, s.Attributes)
			}
		}
		if !hasAttr(got[1].Attributes, attribute.String("backi.result", "failure")) || got[1].Status.Description != "smtp down" {
			t.Fatalf("failed span %+v", got[1])
		}

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		sums := map[string]int64{}
		var durations metricdata.HistogramDataPoint[float64]
		var consecutive, inFlight int64 = -1, -1
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, p := range d.DataPoints {
						if r, ok := p.Attributes.Value("backi.result"); ok {
							sums[r.AsString()] = p.Value
						} else if m.Name == "backi.iterations.in_flight" {
							inFlight = p.Value
						}
					}
				case metricdata.Histogram[float64]:
					durations = d.DataPoints[0]
				case metricdata.Gauge[int64]:
					if m.Name == "backi.consecutive_failures" {
						consecutive = d.DataPoints[0].Value
					}
				}
			}
		}
		if sums["success"] != 1 || sums["failure"] != 2 || sums["stopped"] != 1 || inFlight != 0 {
			t.Fatalf("iterations by result %v, in flight %d", sums, inFlight)
		}
		if durations.Count != 4 || durations.Sum != 4 {
			t.Fatalf("durations: count %d, sum %v", durations.Count, durations.Sum)
		}
		if consecutive != 2 {
			t.Fatalf("consecutive failures %d, want 2", consecutive)
		}
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
}

func hasAttr(attrs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, a := range attrs {
		if a == want {
			return true
		}
	}
	return false
}

// The loops of a paused worker are counted in the paused state.
func TestPausedLoopsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		obs, err := backiotel.New(backiotel.WithMeterProvider(mp))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("poller", func(context.Context) error { return backi.ErrNoWork },
			backi.WithObserver(obs), backi.WithLogger(quiet), backi.WithConcurrency(2))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		w.Pause()
		synctest.Wait()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		loops := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if d, ok := m.Data.(metricdata.Sum[int64]); ok {
					for _, p := range d.DataPoints {
						if s, ok := p.Attributes.Value("backi.state"); ok {
							loops[s.AsString()] = p.Value
						}
					}
				}
			}
		}
		if loops["paused"] != 2 || loops["idle"] != 0 {
			t.Fatalf("loops by state %v, want 2 paused and none idle", loops)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mp.Shutdown(context.Background())
	})
}
