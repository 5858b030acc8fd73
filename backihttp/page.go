package backihttp

import (
	"context"
	_ "embed"
	"net/http"
	"sync"
	"time"

	"github.com/backi-go/backi"
)

//go:embed page.html
var pageHTML []byte

// HistoryLen is how many recent iterations per worker the page charts.
const HistoryLen = 60

// Page is a live HTML status page: one row per worker with its state,
// counters, last error, time since the last success, the iteration in flight
// and its age, the next scheduled run, and a chart of recent iteration
// durations with failures marked. The page refreshes itself every second
// without reloading, carries all its assets (it works offline), writes every
// value as text (an error message cannot inject markup), and fits a phone's
// screen.
//
// A Page is a backi.Observer, which records the recent iterations it charts:
// pass it to backi.WithObserver (with backi.Observers to combine it with
// others), and serve Handler at a path of its own:
//
//	page := backihttp.NewPage()
//	host := backi.NewHost(backi.WithObserver(page))
//	mux.Handle("GET /backi", page.Handler(host))
type Page struct {
	mu      sync.Mutex
	history map[string]*ring
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

// NewPage returns a page with no history yet.
func NewPage() *Page { return &Page{history: map[string]*ring{}} }

// IterationStart implements backi.Observer.
func (p *Page) IterationStart(ctx context.Context, e backi.IterationEvent) context.Context {
	return ctx
}

// IterationEnd implements backi.Observer.
func (p *Page) IterationEnd(ctx context.Context, e backi.IterationEvent, r backi.IterationResult) {
	if r.Result == backi.ResultShutdown {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
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
}

// PageWorker is one row of the page.
type PageWorker struct {
	WorkerStatus
	Recent []Point `json:"recent"`
}

// Handler serves the page of h at the path it is mounted on, and the data
// the page shows, a PageData, at that path with the query ?json.
func (p *Page) Handler(h *backi.Host) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["json"]; ok {
			d := PageData{State: h.State().String(), Now: time.Now(), Workers: []PageWorker{}}
			for _, wk := range h.Workers() {
				d.Workers = append(d.Workers, PageWorker{NewWorkerStatus(wk.Status()), p.recent(wk.Name())})
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
