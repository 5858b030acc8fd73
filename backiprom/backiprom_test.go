package backiprom_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/backiprom"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestExposition runs a worker through every result, each iteration lasting
// a second of synctest's clock, and compares the exact exposition.
func TestExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := backiprom.New(backiprom.WithBuckets(0.5, 1, 2))
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(m)
		n := 0
		w := backi.Loop("mailer", func(ctx context.Context) error {
			time.Sleep(time.Second)
			switch n++; n {
			case 1:
				return nil
			case 2:
				return backi.ErrNoWork
			case 3, 4:
				return errors.New("smtp down")
			}
			return backi.Stop(nil)
		}, backi.WithObserver(m), backi.WithLogger(quiet),
			backi.WithIdle(time.Second, time.Second), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := `
# HELP backi_consecutive_failures Failures of a worker since its last iteration that did not fail.
# TYPE backi_consecutive_failures gauge
backi_consecutive_failures{worker="mailer"} 2
# HELP backi_iteration_duration_seconds How long iterations of a worker ran.
# TYPE backi_iteration_duration_seconds histogram
backi_iteration_duration_seconds_bucket{worker="mailer",le="0.5"} 0
backi_iteration_duration_seconds_bucket{worker="mailer",le="1"} 5
backi_iteration_duration_seconds_bucket{worker="mailer",le="2"} 5
backi_iteration_duration_seconds_bucket{worker="mailer",le="+Inf"} 5
backi_iteration_duration_seconds_sum{worker="mailer"} 5
backi_iteration_duration_seconds_count{worker="mailer"} 5
# HELP backi_iterations_in_flight Iterations of a worker running now.
# TYPE backi_iterations_in_flight gauge
backi_iterations_in_flight{worker="mailer"} 0
# HELP backi_iterations_total Finished iterations of a worker, by result.
# TYPE backi_iterations_total counter
backi_iterations_total{result="failure",worker="mailer"} 2
backi_iterations_total{result="no_work",worker="mailer"} 1
backi_iterations_total{result="shutdown",worker="mailer"} 0
backi_iterations_total{result="stopped",worker="mailer"} 1
backi_iterations_total{result="success",worker="mailer"} 1
# HELP backi_last_success_timestamp_seconds When the last successful iteration of a worker ended, in Unix time.
# TYPE backi_last_success_timestamp_seconds gauge
backi_last_success_timestamp_seconds{worker="mailer"} 9.46684801e+08
# HELP backi_worker_state How many loops of the worker are in each state.
# TYPE backi_worker_state gauge
backi_worker_state{state="backing off",worker="mailer"} 0
backi_worker_state{state="campaigning",worker="mailer"} 0
backi_worker_state{state="idle",worker="mailer"} 0
backi_worker_state{state="paused",worker="mailer"} 0
backi_worker_state{state="running",worker="mailer"} 0
backi_worker_state{state="stuck",worker="mailer"} 0
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestStateWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := backiprom.New()
		ctx, cancel := context.WithCancel(t.Context())
		w := backi.Loop("poller", func(ctx context.Context) error { return backi.ErrNoWork },
			backi.WithObserver(m), backi.WithLogger(quiet))
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		want := `
# HELP backi_worker_state How many loops of the worker are in each state.
# TYPE backi_worker_state gauge
backi_worker_state{state="backing off",worker="poller"} 0
backi_worker_state{state="campaigning",worker="poller"} 0
backi_worker_state{state="idle",worker="poller"} 1
backi_worker_state{state="paused",worker="poller"} 0
backi_worker_state{state="running",worker="poller"} 0
backi_worker_state{state="stuck",worker="poller"} 0
`
		if err := testutil.CollectAndCompare(m, strings.NewReader(want), "backi_worker_state"); err != nil {
			t.Fatal(err)
		}
		w.Pause()
		synctest.Wait()
		want = strings.Replace(strings.Replace(want, `"idle",worker="poller"} 1`, `"idle",worker="poller"} 0`, 1), `"paused",worker="poller"} 0`, `"paused",worker="poller"} 1`, 1)
		if err := testutil.CollectAndCompare(m, strings.NewReader(want), "backi_worker_state"); err != nil {
			t.Fatalf("paused: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// queueStats is a backihttp.Queues whose Stats answers stats or err.
type queueStats struct {
	backihttp.Queues
	stats []backihttp.QueueStats
	err   error
}

func (q queueStats) Stats(context.Context) ([]backihttp.QueueStats, error) { return q.stats, q.err }

func TestQueues(t *testing.T) {
	c := backiprom.NewQueues(queueStats{stats: []backihttp.QueueStats{{Queue: "mail", Due: 3, Later: 1, OldestDueSeconds: 2.5, Running: 4, Retrying: 2, Dead: 5}}})
	want := `
# HELP backi_queue_jobs Jobs of a queue, by state.
# TYPE backi_queue_jobs gauge
backi_queue_jobs{queue="mail",state="dead"} 5
backi_queue_jobs{queue="mail",state="due"} 3
backi_queue_jobs{queue="mail",state="later"} 1
backi_queue_jobs{queue="mail",state="retrying"} 2
backi_queue_jobs{queue="mail",state="running"} 4
# HELP backi_queue_oldest_due_seconds How long the oldest due job of a queue has waited.
# TYPE backi_queue_oldest_due_seconds gauge
backi_queue_oldest_due_seconds{queue="mail"} 2.5
# HELP backi_queue_scrape_error 1 when the last read of the queues' stats failed, else 0.
# TYPE backi_queue_scrape_error gauge
backi_queue_scrape_error 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	failing := backiprom.NewQueues(queueStats{err: errors.New("database down")})
	if err := testutil.CollectAndCompare(failing, strings.NewReader(`
# HELP backi_queue_scrape_error 1 when the last read of the queues' stats failed, else 0.
# TYPE backi_queue_scrape_error gauge
backi_queue_scrape_error 1
`)); err != nil {
		t.Fatal(err)
	}
}
