package pgqueue

import (
	"context"
	"errors"
	"strings"

	"github.com/backi-go/backi/backihttp"
)

// ForHTTP adapts q for backihttp.QueueControl, which shows its queues'
// stats and dead jobs and retries or discards them over HTTP:
//
//	mux.Handle("/backi/queues/", http.StripPrefix("/backi", backihttp.QueueControl(pgqueue.ForHTTP(q))))
func ForHTTP(q *Queue) backihttp.Queues { return httpQueues{q} }

type httpQueues struct{ q *Queue }

func (h httpQueues) Stats(ctx context.Context) ([]backihttp.QueueStats, error) {
	stats, err := h.q.Stats(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]backihttp.QueueStats, len(stats))
	for i, s := range stats {
		out[i] = backihttp.QueueStats{Queue: s.Queue, Due: s.Due, Later: s.Later, OldestDueSeconds: s.OldestDue.Seconds(),
			Running: s.Running, Retrying: s.Retrying, Dead: s.Dead}
	}
	return out, nil
}

func (h httpQueues) Dead(ctx context.Context, queue string, limit int) ([]backihttp.DeadJob, error) {
	jobs, err := h.q.Dead(ctx, queue, limit)
	if err != nil {
		return nil, err
	}
	out := make([]backihttp.DeadJob, len(jobs))
	for i, j := range jobs {
		out[i] = backihttp.DeadJob{ID: j.ID, Queue: j.Queue, Attempts: j.Attempts, LastError: j.LastError, DiedAt: j.DiedAt,
			Payload: strings.ToValidUTF8(string(j.Payload), "\uFFFD")}
	}
	return out, nil
}

func (h httpQueues) Retry(ctx context.Context, queue string, id int64) error {
	return inQueue(h.q.retry(ctx, &queue, id))
}

func (h httpQueues) Discard(ctx context.Context, queue string, id int64) error {
	return inQueue(h.q.discard(ctx, &queue, id))
}

// inQueue is the error of an action on a dead job of one queue, which acts
// on no other queue's jobs: ErrNotDead is backihttp's ErrNoSuchJob.
func inQueue(err error) error {
	if errors.Is(err, ErrNotDead) {
		return backihttp.ErrNoSuchJob
	}
	return err
}
