// Package backihttp serves what a backi.Host knows over HTTP: health checks
// for Kubernetes probes, the status of every worker as JSON, a live status
// page, and controls to pause, resume and run workers. It uses only the
// standard library.
//
//	mux.Handle("GET /livez", backihttp.Liveness(host))
//	mux.Handle("GET /readyz", backihttp.Readiness(host))
//	mux.Handle("GET /status", backihttp.Status(host))
//	mux.Handle("/backi/control/", http.StripPrefix("/backi/control", backihttp.Control(host)))
package backihttp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/safe"
)

// An Option configures Liveness.
type Option func(*config)

type config struct{ failureThreshold uint64 }

// WithFailureThreshold makes a worker with n or more consecutive failures fail
// the liveness check. 0, the default, means that failures alone never fail it.
func WithFailureThreshold(n uint64) Option {
	return func(c *config) { c.failureThreshold = n }
}

// Health is the body of a health check's answer.
type Health struct {
	// Status is "ok", or for a failing check "failing" or "not ready".
	Status string `json:"status"`
	// Problems says why the check fails, one line per worker or reason.
	Problems []string `json:"problems,omitempty"`
}

// Liveness answers 200 while every worker of h is alive, and 503 when one is
// stuck (see backi.WithStuckAfter) or has reached the failure threshold (see
// WithFailureThreshold). The JSON body, a Health, says which and why. A
// restart is what a failing liveness check asks for: a worker that is only
// backing off is alive.
func Liveness(h *backi.Host, opts ...Option) http.Handler {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		for _, wk := range h.Workers() {
			st := wk.Status()
			if st.State == backi.StateStuck {
				problems = append(problems, fmt.Sprintf("%s: an iteration is stuck, running for %v", st.Name, time.Since(st.InFlightSince).Round(time.Second)))
			}
			if c.failureThreshold > 0 && st.ConsecutiveFailures >= c.failureThreshold {
				problems = append(problems, fmt.Sprintf("%s: %d consecutive failures (threshold %d), last: %s", st.Name, st.ConsecutiveFailures, c.failureThreshold, safe.Text(st.LastError)))
			}
		}
		if len(problems) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, Health{Status: "failing", Problems: problems})
			return
		}
		writeJSON(w, http.StatusOK, Health{Status: "ok"})
	})
}

// Readiness answers 200 while h is running, and 503 before it has started
// its services and from the moment it begins to stop, so that traffic is
// routed elsewhere during a shutdown.
func Readiness(h *backi.Host) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := h.State(); st != backi.HostRunning {
			writeJSON(w, http.StatusServiceUnavailable, Health{Status: "not ready", Problems: []string{"host is " + st.String()}})
			return
		}
		writeJSON(w, http.StatusOK, Health{Status: "ok"})
	})
}

// WorkerStatus is backi.Status as JSON: errors as text, zero times omitted.
type WorkerStatus struct {
	Name                string     `json:"name"`
	State               string     `json:"state"`
	Paused              bool       `json:"paused"`
	Concurrency         int        `json:"concurrency"`
	Iterations          uint64     `json:"iterations"`
	Successes           uint64     `json:"successes"`
	Failures            uint64     `json:"failures"`
	NoWork              uint64     `json:"no_work"`
	ConsecutiveFailures uint64     `json:"consecutive_failures"`
	CampaignFailures    uint64     `json:"campaign_failures"`
	Leader              bool       `json:"leader"`
	LeaderSince         *time.Time `json:"leader_since,omitempty"`
	Term                uint64     `json:"term,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	LastSuccess         *time.Time `json:"last_success,omitempty"`
	LastFailure         *time.Time `json:"last_failure,omitempty"`
	InFlightSince       *time.Time `json:"in_flight_since,omitempty"`
	Schedule            string     `json:"schedule,omitempty"`
	NextRun             *time.Time `json:"next_run,omitempty"`
}

// NewWorkerStatus converts a Status.
func NewWorkerStatus(s backi.Status) WorkerStatus {
	ws := WorkerStatus{
		Name: s.Name, State: s.State.String(), Paused: s.Paused, Concurrency: s.Concurrency,
		Iterations: s.Iterations, Successes: s.Successes, Failures: s.Failures, NoWork: s.NoWork,
		ConsecutiveFailures: s.ConsecutiveFailures, CampaignFailures: s.CampaignFailures,
		Leader: s.Leader, LeaderSince: timePtr(s.LeaderSince), Term: s.Term, Schedule: s.Schedule,
		LastSuccess: timePtr(s.LastSuccess), LastFailure: timePtr(s.LastFailure),
		InFlightSince: timePtr(s.InFlightSince), NextRun: timePtr(s.NextRun),
	}
	if s.LastError != nil {
		ws.LastError = safe.Text(s.LastError)
	}
	return ws
}

// HostStatus is the body of Status.
type HostStatus struct {
	State   string         `json:"state"`
	Workers []WorkerStatus `json:"workers"`
}

// Status answers with the state of h and the Status of each of its workers,
// as a HostStatus in JSON.
func Status(h *backi.Host) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs := HostStatus{State: h.State().String(), Workers: []WorkerStatus{}}
		for _, wk := range h.Workers() {
			hs.Workers = append(hs.Workers, NewWorkerStatus(wk.Status()))
		}
		writeJSON(w, http.StatusOK, hs)
	})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
