package backihttp

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/safe"
)

//go:embed page.html
var pageHTML []byte

// HistoryLen is how many recent iterations per worker the page charts.
const HistoryLen = 60

// FailuresKept is how many recent failures per worker the page lists.
const FailuresKept = 5

// Page is a live HTML status page: one row per worker with its state
// (paused and campaigning included), counters, last error and its recent
// failures (with the stack of a panic, on demand), time since the last
// success, the iteration in flight and its age, the schedule and the next
// run, the leader's term, and a chart of recent iteration durations with
// failures marked. The page refreshes itself every second without
// reloading, carries all its assets (it works offline), writes every value
// as text (an error message cannot inject markup), and fits a phone's
// screen. Given the path of a Control handler (PageControls), it also shows
// Pause, Resume and Run now buttons for each worker; given job queues
// (PageQueues), a table of their stats.
//
// A Page is a backi.Observer, which records the recent iterations it charts
// and the failures it lists: pass it to backi.WithObserver (with
// backi.Observers to combine it with others), and serve Handler at a path of
// its own:
//
//	page := backihttp.NewPage()
//	host := backi.NewHost(backi.WithObserver(page))
//	mux.Handle("GET /backi", page.Handler(host))
type Page struct {
	mu       sync.Mutex
	history  map[string]*ring
	failures map[string][]PageFailure // the latest last
}

type ring struct {
	points [HistoryLen]Point
	next   int
	n      int
}

// Point is one recent iteration on the page's chart.
type Point struct {
	Seconds float64 `json:"s"`
	Failed  bool    `json:"f,omitempty"`
}

// PageFailure is one recent failure of a worker, as the page lists it.
type PageFailure struct {
	At    time.Time `json:"at"`
	Error string    `json:"error"`
	// Stack is where an iteration panicked; empty for an error.
	Stack string `json:"stack,omitempty"`
}

// NewPage returns a page with no history yet.
func NewPage() *Page { return &Page{history: map[string]*ring{}, failures: map[string][]PageFailure{}} }

// IterationStart implements backi.Observer.
func (p *Page) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	return ctx
}

// IterationEnd implements backi.Observer.
func (p *Page) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	if r.Result == backi.ResultShutdown {
		return
	}
	var failure PageFailure
	if r.Result == backi.ResultFailure {
		failure = newFailure(e.Start.Add(r.Duration), r.Err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Result == backi.ResultFailure {
		fs := append(p.failures[e.Worker], failure)
		p.failures[e.Worker] = fs[max(0, len(fs)-FailuresKept):]
	}
	h := p.history[e.Worker]
	if h == nil {
		h = &ring{}
		p.history[e.Worker] = h
	}
	h.points[h.next] = Point{Seconds: r.Duration.Seconds(), Failed: r.Result == backi.ResultFailure}
	h.next = (h.next + 1) % HistoryLen
	h.n = min(h.n+1, HistoryLen)
}

// StateChange implements backi.Observer.
func (p *Page) StateChange(string, int, backi.State, backi.State) {}

// newFailure describes a failure that ended at, with err, whose text is
// read with text.
func newFailure(at time.Time, err error) PageFailure {
	f := PageFailure{At: at, Error: safe.Text(err)}
	if pe, ok := errors.AsType[*backi.PanicError](err); ok {
		f.Stack = strings.TrimSpace(string(pe.Stack))
	}
	return f
}

// recentFailures returns a copy of the worker's recent failures, the latest
// first.
func (p *Page) recentFailures(name string) []PageFailure {
	p.mu.Lock()
	defer p.mu.Unlock()
	fs := p.failures[name]
	out := make([]PageFailure, len(fs))
	for i, f := range fs {
		out[len(fs)-1-i] = f
	}
	return out
}

func (p *Page) recent(name string) []Point {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.history[name]
	if h == nil {
		return []Point{}
	}
	out := make([]Point, 0, h.n)
	for i := range h.n {
		out = append(out, h.points[(h.next-h.n+i+HistoryLen)%HistoryLen])
	}
	return out
}

// PageData is what the page shows, as its path?json answers it.
type PageData struct {
	State   string       `json:"state"`
	Now     time.Time    `json:"now"`
	Workers []PageWorker `json:"workers"`
	// Control is the path of the Control handler the buttons post to;
	// empty without buttons (see PageControls).
	Control string `json:"control,omitempty"`
	// Queues are the stats of the job queues given to PageQueues; QueueError
	// says why they could not be read.
	Queues     []QueueStats `json:"queues,omitempty"`
	QueueError string       `json:"queue_error,omitempty"`
}

// PageWorker is one row of the page.
type PageWorker struct {
	WorkerStatus
	Recent []Point `json:"recent"`
	// RecentFailures are the worker's latest failures, the latest first; at
	// most FailuresKept.
	RecentFailures []PageFailure `json:"recent_failures"`
}

// A PageOption configures Page.Handler.
type PageOption func(*pageConfig)

type pageConfig struct {
	control string
	queues  Queues
}

// pageQueuesTimeout bounds the page's read of its queues' stats.
const pageQueuesTimeout = 2 * time.Second

// PageQueues makes the page show the stats of the job queues qs (due,
// later, oldest due, running, retrying and dead jobs of each), read at each
// refresh within 2 s. qs must not be nil.
func PageQueues(qs Queues) PageOption {
	if qs == nil {
		panic("backihttp: PageQueues(nil): the queues are nil")
	}
	return func(c *pageConfig) { c.queues = qs }
}

// PageControls makes the page show Pause, Resume and Run now buttons for
// each worker, which post to the Control handler mounted at path (as in
// mux.Handle(path+"/", http.StripPrefix(path, backihttp.Control(host)))). A
// pause asks for confirmation first. path must start with one "/", not "//"
// or "/\", which a browser reads as another host; the buttons are
// same-origin requests, which Control accepts.
func PageControls(path string) PageOption {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.HasPrefix(path, `/\`) {
		panic(fmt.Sprintf("backihttp: PageControls(%q): the path must start with one / and name no host", path))
	}
	return func(c *pageConfig) { c.control = strings.TrimSuffix(path, "/") }
}

// Handler serves the page of h at the path it is mounted on, and the data
// the page shows, a PageData, at that path with the query ?json.
func (p *Page) Handler(h *backi.Host, opts ...PageOption) http.Handler {
	var c pageConfig
	for _, o := range opts {
		o(&c)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["json"]; ok {
			d := PageData{State: h.State().String(), Now: time.Now(), Workers: []PageWorker{}, Control: c.control}
			for _, wk := range h.Workers() {
				d.Workers = append(d.Workers, PageWorker{NewWorkerStatus(wk.Status()), p.recent(wk.Name()), p.recentFailures(wk.Name())})
			}
			if c.queues != nil {
				ctx, cancel := context.WithTimeout(r.Context(), pageQueuesTimeout)
				stats, err := c.queues.Stats(ctx)
				cancel()
				if err != nil {
					d.QueueError = safe.Text(err)
				}
				d.Queues = stats
			}
			writeJSON(w, http.StatusOK, d)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		w.Write(pageHTML)
	})
}
