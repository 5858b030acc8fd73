// Package backiotel reports backi workers to OpenTelemetry: a span per
// iteration, with its error recorded and its status set, and the metrics of
// package backiprom through the OpenTelemetry metrics API. An Observer is a
// backi.Observer:
//
//	obs, err := backiotel.New() // the global providers, or WithTracerProvider / WithMeterProvider
//	host := backi.NewHost(backi.WithObserver(obs))
//
// The iteration's context carries its span, so that what the iteration does
// is traced beneath it. Spans are named after the worker and carry the
// attributes backi.worker, backi.loop, backi.iteration and backi.result.
//
// Metrics, each with the attribute backi.worker:
//
//	backi.iterations             counter of finished iterations, with backi.result
//	backi.iteration.duration     histogram of iteration durations, in seconds
//	backi.iterations.in_flight   up-down counter of iterations running now
//	backi.consecutive_failures   gauge: failures since the last iteration that did not fail
//	backi.last_success           gauge: when the last success ended, in Unix seconds
//	backi.worker.state           up-down counter: the loops in each state (with backi.state:
//	                             running, idle, backing off, stuck, campaigning, paused)
//
// The package lives in its own module so that backi's users who do not use
// OpenTelemetry never download it.
package backiotel

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/backi-go/backi"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const scope = "github.com/backi-go/backi/backiotel"

// An Option configures New.
type Option func(*config)

type config struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// WithTracerProvider sets where spans go; the default is otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithMeterProvider sets where metrics go; the default is otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// Observer traces and measures the workers it observes. Its methods are safe
// for concurrent use.
type Observer struct {
	tracer      trace.Tracer
	iterations  metric.Int64Counter
	duration    metric.Float64Histogram
	inFlight    metric.Int64UpDownCounter
	consecutive metric.Int64Gauge
	lastSuccess metric.Float64Gauge
	state       metric.Int64UpDownCounter

	workers sync.Map // name → *worker
}

type worker struct {
	attrs    metric.MeasurementOption    // backi.worker
	results  [5]metric.MeasurementOption // backi.worker and backi.result, by backi.Result
	failures atomic.Int64
}

var results = []backi.Result{backi.ResultSuccess, backi.ResultNoWork, backi.ResultFailure, backi.ResultStopped, backi.ResultShutdown}

// New returns an Observer, or an error if an instrument cannot be made.
func New(opts ...Option) (*Observer, error) {
	c := config{tp: otel.GetTracerProvider(), mp: otel.GetMeterProvider()}
	for _, o := range opts {
		o(&c)
	}
	m := c.mp.Meter(scope)
	o := &Observer{tracer: c.tp.Tracer(scope)}
	var err error
	if o.iterations, err = m.Int64Counter("backi.iterations", metric.WithUnit("{iteration}"),
		metric.WithDescription("Finished iterations of a worker, by result.")); err != nil {
		return nil, err
	}
	if o.duration, err = m.Float64Histogram("backi.iteration.duration", metric.WithUnit("s"),
		metric.WithDescription("How long iterations of a worker ran.")); err != nil {
		return nil, err
	}
	if o.inFlight, err = m.Int64UpDownCounter("backi.iterations.in_flight", metric.WithUnit("{iteration}"),
		metric.WithDescription("Iterations of a worker running now.")); err != nil {
		return nil, err
	}
	if o.consecutive, err = m.Int64Gauge("backi.consecutive_failures", metric.WithUnit("{failure}"),
		metric.WithDescription("Failures of a worker since its last iteration that did not fail.")); err != nil {
		return nil, err
	}
	if o.lastSuccess, err = m.Float64Gauge("backi.last_success", metric.WithUnit("s"),
		metric.WithDescription("When the last successful iteration of a worker ended, in Unix time.")); err != nil {
		return nil, err
	}
	if o.state, err = m.Int64UpDownCounter("backi.worker.state", metric.WithUnit("{loop}"),
		metric.WithDescription("How many loops of the worker are in each state.")); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *Observer) worker(name string) *worker {
	if w, ok := o.workers.Load(name); ok {
		return w.(*worker)
	}
	w := &worker{attrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("backi.worker", name)))}
	for _, r := range results {
		w.results[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("backi.worker", name), attribute.String("backi.result", r.String())))
	}
	actual, _ := o.workers.LoadOrStore(name, w)
	return actual.(*worker)
}

// IterationStart implements backi.Observer: it starts the iteration's span.
func (o *Observer) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	o.inFlight.Add(ctx, 1, o.worker(e.Worker).attrs)
	ctx, _ = o.tracer.Start(ctx, e.Worker, trace.WithTimestamp(e.Start), trace.WithAttributes(
		attribute.String("backi.worker", e.Worker),
		attribute.Int("backi.loop", e.Loop),
		attribute.Int64("backi.iteration", int64(e.Iteration)),
	))
	return ctx
}

// IterationEnd implements backi.Observer: it ends the span and records the
// metrics.
func (o *Observer) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	w := o.worker(e.Worker)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("backi.result", r.Result.String()))
	if r.Result == backi.ResultFailure {
		span.RecordError(r.Err)
		span.SetStatus(codes.Error, r.Err.Error())
	}
	span.End(trace.WithTimestamp(e.Start.Add(r.Duration)))

	o.inFlight.Add(ctx, -1, w.attrs)
	if int(r.Result) < len(w.results) {
		o.iterations.Add(ctx, 1, w.results[r.Result])
	}
	o.duration.Record(ctx, r.Duration.Seconds(), w.attrs)
	switch r.Result {
	case backi.ResultFailure:
		o.consecutive.Record(ctx, w.failures.Add(1), w.attrs)
	case backi.ResultSuccess, backi.ResultNoWork:
		if w.failures.Swap(0) != 0 {
			o.consecutive.Record(ctx, 0, w.attrs)
		}
		if r.Result == backi.ResultSuccess {
			o.lastSuccess.Record(ctx, float64(e.Start.Add(r.Duration).UnixNano())/1e9, w.attrs)
		}
	}
}

// gauged are the states a loop is in while its worker runs.
var gauged = []backi.State{backi.StateRunning, backi.StateIdle, backi.StateBackingOff, backi.StateStuck, backi.StateCampaigning, backi.StatePaused}

// StateChange implements backi.Observer. A worker reports every change of
// each loop, in order, so counting them gives the loops in each state.
func (o *Observer) StateChange(name string, loop int, from, to backi.State) {
	for _, c := range []struct {
		state backi.State
		delta int64
	}{{from, -1}, {to, 1}} {
		if slices.Contains(gauged, c.state) {
			o.state.Add(context.Background(), c.delta, metric.WithAttributes(
				attribute.String("backi.worker", name), attribute.String("backi.state", c.state.String())))
		}
	}
}
