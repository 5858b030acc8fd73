// Package backiprom exposes backi workers to Prometheus. A Metrics is both a
// backi.Observer, which hears every iteration as it happens, and a
// prometheus.Collector, which reports what it heard when scraped:
//
//	m := backiprom.New()
//	prometheus.MustRegister(m)
//	host := backi.NewHost(backi.WithObserver(m))
//
// The metrics, each labelled with the worker's name:
//
//	backi_iterations_total{worker,result}          counter: finished iterations by result
//	                                               (success, failure, no_work, stopped, shutdown)
//	backi_iteration_duration_seconds{worker}       histogram of iteration durations
//	backi_iterations_in_flight{worker}             gauge: iterations running now
//	backi_consecutive_failures{worker}             gauge: failures since the last iteration that did not fail
//	backi_last_success_timestamp_seconds{worker}   gauge: when the last success ended (Unix time)
//	backi_worker_state{worker,state}               gauge: how many loops of the worker are in each
//	                                               state (running, idle, backing off, stuck,
//	                                               campaigning, paused); all 0 once the worker ended
//
// NewQueues is a collector of job queues' stats (see Queues).
//
// The package lives in its own module so that backi's users who do not use
// Prometheus never download its client.
package backiprom

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/backi-go/backi"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBuckets are the upper bounds, in seconds, of the iteration duration
// histogram when no WithBuckets option is given: 1 ms to 1 min.
var DefaultBuckets = []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 60}

// An Option configures New.
type Option func(*Metrics)

// WithBuckets sets the upper bounds of the iteration duration histogram.
func WithBuckets(b ...float64) Option { return func(m *Metrics) { m.buckets = b } }

// Metrics collects the metrics of the workers it observes. Its methods are
// safe for concurrent use.
type Metrics struct {
	buckets     []float64
	iterations  *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec
	consecutive *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	state       *prometheus.GaugeVec

	workers sync.Map // worker name → *worker
}

// worker holds one worker's metric children, looked up once.
type worker struct {
	results     [5]prometheus.Counter // by backi.Result
	duration    prometheus.Observer
	inFlight    prometheus.Gauge
	consecutive prometheus.Gauge
	lastSuccess prometheus.Gauge
	failures    atomic.Int64 // consecutive
}

var results = []backi.Result{backi.ResultSuccess, backi.ResultNoWork, backi.ResultFailure, backi.ResultStopped, backi.ResultShutdown}

// New returns a Metrics, to register with a Prometheus registry and to pass
// to backi.WithObserver.
func New(opts ...Option) *Metrics {
	m := &Metrics{buckets: DefaultBuckets}
	for _, o := range opts {
		o(m)
	}
	m.iterations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backi_iterations_total", Help: "Finished iterations of a worker, by result.",
	}, []string{"worker", "result"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "backi_iteration_duration_seconds", Help: "How long iterations of a worker ran.", Buckets: m.buckets,
	}, []string{"worker"})
	m.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backi_iterations_in_flight", Help: "Iterations of a worker running now.",
	}, []string{"worker"})
	m.consecutive = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backi_consecutive_failures", Help: "Failures of a worker since its last iteration that did not fail.",
	}, []string{"worker"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backi_last_success_timestamp_seconds", Help: "When the last successful iteration of a worker ended, in Unix time.",
	}, []string{"worker"})
	m.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "backi_worker_state", Help: "How many loops of the worker are in each state.",
	}, []string{"worker", "state"})
	return m
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.iterations, m.duration, m.inFlight, m.consecutive, m.lastSuccess, m.state}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *Metrics) worker(name string) *worker {
	if w, ok := m.workers.Load(name); ok {
		return w.(*worker)
	}
	w := &worker{
		duration:    m.duration.WithLabelValues(name),
		inFlight:    m.inFlight.WithLabelValues(name),
		consecutive: m.consecutive.WithLabelValues(name),
		lastSuccess: m.lastSuccess.WithLabelValues(name),
	}
	for _, r := range results {
		w.results[r] = m.iterations.WithLabelValues(name, r.String())
	}
	for _, s := range gauged {
		m.state.WithLabelValues(name, s.String()).Set(0)
	}
	actual, _ := m.workers.LoadOrStore(name, w)
	return actual.(*worker)
}

// IterationStart implements backi.Observer.
func (m *Metrics) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	m.worker(e.Worker).inFlight.Inc()
	return ctx
}

// IterationEnd implements backi.Observer.
func (m *Metrics) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	w := m.worker(e.Worker)
	w.inFlight.Dec()
	if int(r.Result) < len(w.results) {
		w.results[r.Result].Inc()
	}
	w.duration.Observe(r.Duration.Seconds())
	switch r.Result {
	case backi.ResultFailure:
		w.consecutive.Set(float64(w.failures.Add(1)))
	case backi.ResultSuccess, backi.ResultNoWork:
		if w.failures.Swap(0) != 0 {
			w.consecutive.Set(0)
		}
		if r.Result == backi.ResultSuccess {
			w.lastSuccess.Set(float64(e.Start.Add(r.Duration).UnixNano()) / 1e9)
		}
	}
}

// gauged are the states a loop is in while its worker runs.
var gauged = []backi.State{backi.StateRunning, backi.StateIdle, backi.StateBackingOff, backi.StateStuck, backi.StateCampaigning, backi.StatePaused}

// StateChange implements backi.Observer. A worker reports every change of
// each loop, in order, so counting them gives the loops in each state.
func (m *Metrics) StateChange(name string, loop int, from, to backi.State) {
	m.worker(name) // sets the gauges of a new worker to 0
	if slices.Contains(gauged, from) {
		m.state.WithLabelValues(name, from.String()).Dec()
	}
	if slices.Contains(gauged, to) {
		m.state.WithLabelValues(name, to.String()).Inc()
	}
}
