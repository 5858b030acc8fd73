package backido_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/samber/do/v2"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

// world is a root injector with a shared pool, and the registration of a
// turn's services: a tx that uses the pool and the turn's context, and the
// job, the iteration, that uses both. Each records what happens to it in
// the journal; the hooks decide what the job's Run and the tx's Shutdown do
// on each turn, numbered from 1.
type world struct {
	t     *testing.T
	root  *do.RootScope
	start time.Time

	mu     sync.Mutex
	log    []string
	txs    int
	began  []time.Duration // when each tx began, since the world's start
	scopes []string        // the names of the turns' scopes

	run        func(n int, ctx context.Context) error
	txShutdown func(n int, ctx context.Context) error
}

func newWorld(t *testing.T) *world {
	w := &world{t: t, root: do.New(), start: time.Now()}
	do.Provide(w.root, func(do.Injector) (*pool, error) {
		w.note("pool built")
		return &pool{w: w}, nil
	})
	return w
}

// note adds an event to the journal.
func (w *world) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, fmt.Sprintf(format, args...))
}

func (w *world) journal() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.log)
}

// scoped registers the tx and the job in a turn's scope.
func (w *world) scoped(i do.Injector) {
	do.Provide(i, func(i do.Injector) (*tx, error) {
		ctx, err := do.Invoke[context.Context](i)
		if err != nil {
			return nil, err
		}
		p, err := do.Invoke[*pool](i)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		w.txs++
		n := w.txs
		w.began = append(w.began, time.Since(w.start))
		w.mu.Unlock()
		w.note("begin tx %d", n)
		return &tx{w: w, n: n, ctx: ctx, pool: p}, nil
	})
	do.Provide(i, func(i do.Injector) (*job, error) {
		t, err := do.Invoke[*tx](i)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		w.scopes = append(w.scopes, i.Name())
		w.mu.Unlock()
		return &job{w: w, tx: t}, nil
	})
}

// pool is the root singleton.
type pool struct{ w *world }

func (p *pool) Shutdown() { p.w.note("pool shut down") }

// tx is a turn's resource.
type tx struct {
	w    *world
	n    int
	ctx  context.Context
	pool *pool
}

func (t *tx) Shutdown(ctx context.Context) error {
	t.w.note("close tx %d", t.n)
	if t.w.txShutdown != nil {
		return t.w.txShutdown(t.n, ctx)
	}
	return nil
}

// job is the iteration.
type job struct {
	w  *world
	tx *tx
}

func (j *job) Run(ctx context.Context) error {
	j.w.note("run %d", j.tx.n)
	if j.w.run != nil {
		return j.w.run(j.tx.n, ctx)
	}
	return nil
}

func (j *job) Shutdown() { j.w.note("job %d shut down", j.tx.n) }

// results records how each iteration ended.
type results struct {
	mu   sync.Mutex
	list []backi.IterationResult
	end  func() // called at each iteration's end, if set, one call at a time
}

func (r *results) IterationStart(ctx context.Context, _ backi.IterationEvent) context.Context {
	return ctx
}

func (r *results) IterationEnd(_ context.Context, _ backi.IterationEvent, res backi.IterationResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, res)
	if r.end != nil {
		r.end()
	}
}

func (r *results) StateChange(string, int, backi.State, backi.State) {}

func (r *results) all() []backi.IterationResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// kinds returns the results' kinds, in order.
func (r *results) kinds() []backi.Result {
	var out []backi.Result
	for _, res := range r.all() {
		out = append(out, res.Result)
	}
	return out
}

// holders checks that root's children are the worker's holders, at most
// max of them, and that none holds a turn's scope any more.
func holders(t *testing.T, root do.Injector, max int) {
	t.Helper()
	hs := root.Children()
	if len(hs) == 0 || len(hs) > max {
		t.Fatalf("root has %d child scopes, want 1 to %d", len(hs), max)
	}
	for _, h := range hs {
		if c := h.Children(); len(c) != 0 {
			t.Fatalf("scope %s still holds %d scopes, the first %s", h.Name(), len(c), c[0].Name())
		}
	}
}
