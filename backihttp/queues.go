package backihttp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/backi-go/backi/internal/safe"
)

// Queues is what QueueControl shows and acts on: the job queues of a store,
// such as the PostgreSQL queue of package pgqueue (pgqueue.ForHTTP adapts
// it). Its methods must be safe for concurrent use.
type Queues interface {
	// Stats returns the stats of every queue.
	Stats(ctx context.Context) ([]QueueStats, error)
	// Dead returns up to limit dead jobs of queue, the latest to die first.
	Dead(ctx context.Context, queue string, limit int) ([]DeadJob, error)
	// Retry puts the dead job id of queue back to run now; ErrNoSuchJob when
	// queue has no such dead job.
	Retry(ctx context.Context, queue string, id int64) error
	// Discard deletes the dead job id of queue; ErrNoSuchJob when queue has
	// no such dead job.
	Discard(ctx context.Context, queue string, id int64) error
}

// ErrNoSuchJob is what Queues.Retry and Queues.Discard return for a job that
// is not a dead job of the queue named.
var ErrNoSuchJob = errors.New("backihttp: no such dead job")

// QueueStats is one queue's counts.
type QueueStats struct {
	Queue string `json:"queue"`
	// Due counts the jobs that wait to run now, Later those due later.
	Due   int64 `json:"due"`
	Later int64 `json:"later"`
	// OldestDueSeconds is how long the oldest due job has waited.
	OldestDueSeconds float64 `json:"oldest_due_seconds"`
	Running          int64   `json:"running"`
	// Retrying counts the pending jobs that failed before.
	Retrying int64 `json:"retrying"`
	Dead     int64 `json:"dead"`
}

// DeadJob is a job that used its attempts or was cancelled.
type DeadJob struct {
	ID        int64     `json:"id"`
	Queue     string    `json:"queue"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	DiedAt    time.Time `json:"died_at"`
	// Payload is the job's payload as text: its bytes, with the invalid
	// UTF-8 sequences replaced.
	Payload string `json:"payload"`
}

// The actions of QueueControl, as its authorize function is asked them.
const (
	ActionRead    = "read"    // the stats and the dead jobs
	ActionRetry   = "retry"   // Queues.Retry
	ActionDiscard = "discard" // Queues.Discard
)

// DefaultDeadLimit and MaxDeadLimit bound the dead jobs QueueControl lists.
const (
	DefaultDeadLimit = 50
	MaxDeadLimit     = 500
)

// QueueAnswer is the body of QueueControl's answers to actions and errors.
type QueueAnswer struct {
	Action string `json:"action,omitempty"`
	Error  string `json:"error,omitempty"`
}

// QueueControl returns a handler with which operators see job queues and act
// on their dead jobs:
//
//	GET  /queues                           every queue's QueueStats
//	GET  /queues/{queue}/dead?limit=N      its dead jobs (DefaultDeadLimit, at most MaxDeadLimit)
//	POST /queues/{queue}/dead/{id}/retry   run the dead job again
//	POST /queues/{queue}/dead/{id}/discard delete it
//
// Mount it under a prefix with http.StripPrefix, as Control:
//
//	queues := http.StripPrefix("/backi", backihttp.QueueControl(qs))
//	mux.Handle("/backi/queues", queues)
//	mux.Handle("/backi/queues/", queues)
//
// It has Control's protections, and takes the same options: it refuses
// cross-origin requests, asks the WithAuthorize function (with the queue's
// name, "" for the list, and an action among ActionRead, ActionRetry and
// ActionDiscard) before reads and actions, and logs each action, taken or
// refused, at Info with the queue, the job, the action and the remote
// address. Answers are JSON: the data for a read, a QueueAnswer otherwise,
// with 404 for an unknown job or path, 405 for a wrong method, 403 or 500 as
// Control's, and 502 when qs fails. Mount it behind the service's own
// authentication: dead jobs carry their payloads.
func QueueControl(qs Queues, opts ...ControlOption) http.Handler {
	if qs == nil {
		panic("backihttp: QueueControl(nil): the queues are nil")
	}
	c := &queueControl{qs: qs, guard: newGuard(opts)}
	mux := http.NewServeMux()
	mux.HandleFunc("/queues", c.list)
	mux.HandleFunc("/queues/{$}", c.list)
	mux.HandleFunc("/queues/{queue}/dead", c.dead)
	mux.HandleFunc("/queues/{queue}/dead/{id}/{action}", c.act)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, QueueAnswer{Error: "no such path: see backihttp.QueueControl"})
	})
	return mux
}

type queueControl struct {
	qs Queues
	*guard
}

// read checks a read of queue and answers a refusal; it reports whether the
// read may go on.
func (c *queueControl) read(w http.ResponseWriter, r *http.Request, queue string) bool {
	code, err := c.check(w, r, http.MethodGet)
	if err == nil {
		code, err = c.allowed(r, queue, ActionRead)
	}
	if err != nil {
		writeJSON(w, code, QueueAnswer{Action: ActionRead, Error: err.Error()})
		return false
	}
	return true
}

func (c *queueControl) list(w http.ResponseWriter, r *http.Request) {
	if !c.read(w, r, "") {
		return
	}
	stats, err := c.qs.Stats(r.Context())
	if err != nil {
		writeJSON(w, http.StatusBadGateway, QueueAnswer{Action: ActionRead, Error: safe.Text(err)})
		return
	}
	if stats == nil {
		stats = []QueueStats{}
	}
	writeJSON(w, http.StatusOK, stats)
}

func (c *queueControl) dead(w http.ResponseWriter, r *http.Request) {
	queue := r.PathValue("queue")
	if !c.read(w, r, queue) {
		return
	}
	limit := DefaultDeadLimit
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxDeadLimit {
			writeJSON(w, http.StatusBadRequest, QueueAnswer{Action: ActionRead, Error: "limit: need 1 to " + strconv.Itoa(MaxDeadLimit)})
			return
		}
		limit = n
	}
	jobs, err := c.qs.Dead(r.Context(), queue, limit)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, QueueAnswer{Action: ActionRead, Error: safe.Text(err)})
		return
	}
	if jobs == nil {
		jobs = []DeadJob{}
	}
	writeJSON(w, http.StatusOK, jobs)
}

func (c *queueControl) act(w http.ResponseWriter, r *http.Request) {
	queue, job, action := r.PathValue("queue"), r.PathValue("id"), r.PathValue("action")
	code, err := c.take(w, r, queue, job, action)
	ans := QueueAnswer{Action: action}
	attrs := []slog.Attr{slog.String("queue", queue), slog.String("job", job), slog.String("action", action),
		slog.String("remote", r.RemoteAddr), slog.Int("code", code)}
	if err != nil {
		ans.Error = safe.Text(err)
		attrs = append(attrs, slog.String("refused", ans.Error))
	}
	c.say(r, slog.LevelInfo, "queue control", attrs...)
	writeJSON(w, code, ans)
}

func (c *queueControl) take(w http.ResponseWriter, r *http.Request, queue, job, action string) (int, error) {
	if code, err := c.check(w, r, http.MethodPost); err != nil {
		return code, err
	}
	id, err := strconv.ParseInt(job, 10, 64)
	if err != nil || action != ActionRetry && action != ActionDiscard {
		return http.StatusNotFound, errors.New("no such action: POST /queues/{queue}/dead/{id}/retry or /discard")
	}
	if code, err := c.allowed(r, queue, action); err != nil {
		return code, err
	}
	do := c.qs.Retry
	if action == ActionDiscard {
		do = c.qs.Discard
	}
	switch err := do(r.Context(), queue, id); {
	case errors.Is(err, ErrNoSuchJob):
		return http.StatusNotFound, err
	case err != nil:
		return http.StatusBadGateway, err
	}
	return http.StatusOK, nil
}
