package backiprom

import (
	"context"
	"time"

	"github.com/backi-go/backi/backihttp"
	"github.com/prometheus/client_golang/prometheus"
)

// queuesTimeout bounds a scrape's read of the queues' stats.
const queuesTimeout = 5 * time.Second

// Queues is a prometheus.Collector of the stats of job queues, such as
// pgqueue's (pgqueue.ForHTTP adapts one), read at each scrape within 5 s:
//
//	prometheus.MustRegister(backiprom.NewQueues(pgqueue.ForHTTP(q)))
//
// The metrics, each labelled with the queue's name:
//
//	backi_queue_jobs{queue,state}                  gauge: jobs by state (due, later, running, retrying, dead)
//	backi_queue_oldest_due_seconds{queue}          gauge: how long the oldest due job has waited
//	backi_queue_scrape_error                       gauge: 1 when the last read of the stats failed, else 0
type Queues struct {
	qs          backihttp.Queues
	jobs        *prometheus.Desc
	oldest      *prometheus.Desc
	scrapeError *prometheus.Desc
}

// NewQueues returns the collector of qs, which must not be nil.
func NewQueues(qs backihttp.Queues) *Queues {
	if qs == nil {
		panic("backiprom: NewQueues(nil): the queues are nil")
	}
	return &Queues{
		qs:          qs,
		jobs:        prometheus.NewDesc("backi_queue_jobs", "Jobs of a queue, by state.", []string{"queue", "state"}, nil),
		oldest:      prometheus.NewDesc("backi_queue_oldest_due_seconds", "How long the oldest due job of a queue has waited.", []string{"queue"}, nil),
		scrapeError: prometheus.NewDesc("backi_queue_scrape_error", "1 when the last read of the queues' stats failed, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Queues) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
	ch <- c.scrapeError
}

// Collect implements prometheus.Collector.
func (c *Queues) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queuesTimeout)
	defer cancel()
	stats, err := c.qs.Stats(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeError, prometheus.GaugeValue, failed)
	for _, s := range stats {
		for state, n := range map[string]int64{"due": s.Due, "later": s.Later, "running": s.Running, "retrying": s.Retrying, "dead": s.Dead} {
			ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(n), s.Queue, state)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, s.OldestDueSeconds, s.Queue)
	}
}
