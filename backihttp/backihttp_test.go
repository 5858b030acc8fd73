package backihttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func get(t *testing.T, h http.Handler) (int, backihttp.Health, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var body backihttp.Health
	raw := rec.Body.String()
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return rec.Code, body, raw
}

func TestReadinessFollowsTheHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
		h.Add(backi.Loop("draining", func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(5 * time.Second) // finishes its work after the cancel
			return nil
		}))
		ready := backihttp.Readiness(h)
		if code, body, _ := get(t, ready); code != 503 || body.Problems[0] != "host is new" {
			t.Fatalf("before Run: %d %+v", code, body)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		synctest.Wait()
		if code, body, _ := get(t, ready); code != 200 || body.Status != "ok" {
			t.Fatalf("running: %d %+v", code, body)
		}
		cancel()
		time.Sleep(time.Second)
		if code, body, _ := get(t, ready); code != 503 || body.Problems[0] != "host is stopping" {
			t.Fatalf("stopping: %d %+v", code, body)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if code, _, _ := get(t, ready); code != 503 {
			t.Fatalf("stopped: %d", code)
		}
	})
}

func TestLivenessFailsOnStuckAndOnTooManyFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
		release := make(chan struct{})
		n := 0
		h.Add(
			backi.Loop("stuck", func(ctx context.Context) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				<-ctx.Done()
				return nil
			}, backi.WithStuckAfter(time.Minute)),
			backi.Loop("failing", func(ctx context.Context) error {
				if n++; n > 3 {
					<-ctx.Done()
					return nil
				}
				return errors.New(`<script>"boom"</script>`)
			}, backi.WithBackoff(backi.ConstantBackoff(time.Hour))),
		)
		live := backihttp.Liveness(h, backihttp.WithFailureThreshold(3))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()

		time.Sleep(30 * time.Second)
		if code, body, _ := get(t, live); code != 200 {
			t.Fatalf("at 30s: %d %+v", code, body)
		}
		time.Sleep(2 * time.Hour) // three failures, an hour apart; stuck since 1m
		code, body, raw := get(t, live)
		if code != 503 || len(body.Problems) != 2 ||
			!strings.HasPrefix(body.Problems[0], "stuck: an iteration is stuck, running for 2h0m30s") ||
			!strings.HasPrefix(body.Problems[1], `failing: 3 consecutive failures (threshold 3), last: <script>"boom"</script>`) {
			t.Fatalf("at 2h: %d %+v", code, body)
		}
		if strings.Contains(raw, "<script>") {
			t.Fatalf("the JSON body carries raw markup: %s", raw)
		}
		cancel()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestStatusListsEveryWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
		n := 0
		worker := backi.Loop("queue", func(ctx context.Context) error {
			if n++; n == 2 {
				return errors.New("db down")
			}
			return backi.ErrNoWork
		}, backi.WithIdle(time.Minute, time.Minute), backi.WithBackoff(backi.ConstantBackoff(time.Minute)))
		h.Add(worker, backi.Loop("hourly", func(ctx context.Context) error { return nil }, backi.WithSchedule(backi.Every(time.Hour))))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		time.Sleep(90 * time.Second)

		rec := httptest.NewRecorder()
		backihttp.Status(h).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
		var hs backihttp.HostStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &hs); err != nil {
			t.Fatal(err)
		}
		if hs.State != "running" || len(hs.Workers) != 2 {
			t.Fatalf("status %+v", hs)
		}
		q, want := hs.Workers[0], backihttp.NewWorkerStatus(worker.Status())
		if q.Name != "queue" || q.State != "backing off" || q.Iterations != 2 || q.NoWork != 1 || q.Failures != 1 ||
			q.LastError != "db down" || q.LastFailure == nil || q.LastSuccess != nil || q.Iterations != want.Iterations {
			t.Fatalf("queue %+v", q)
		}
		if next := hs.Workers[1].NextRun; next == nil || !next.Equal(time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)) {
			t.Fatalf("hourly next run %v", next)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
