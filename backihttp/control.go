package backihttp

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/safe"
)

// The actions of Control.
const (
	ActionPause  = "pause"  // Worker.Pause
	ActionResume = "resume" // Worker.Resume
	ActionRun    = "run"    // Worker.Wake: a run now, unless the worker backs off after a failure
)

// A ControlOption configures Control and QueueControl.
type ControlOption func(*guard)

// WithAuthorize makes Control ask authorize before each action, after the
// cross-origin check: a non-nil error refuses the action with 403 Forbidden
// and the error's text. action is one of the Action constants, worker the
// name in the request (the worker may not exist). A panic or
// runtime.Goexit in authorize refuses the action with 500, and is logged.
// It must not be nil.
func WithAuthorize(authorize func(r *http.Request, worker, action string) error) ControlOption {
	if authorize == nil {
		panic("backihttp: WithAuthorize(nil): the authorize function is nil")
	}
	return func(g *guard) { g.authorize = authorize }
}

// WithControlLogger sets the logger of Control's records; the default is
// slog.Default(). It must not be nil.
func WithControlLogger(l *slog.Logger) ControlOption {
	if l == nil {
		panic("backihttp: WithControlLogger(nil): the logger is nil")
	}
	return func(g *guard) { g.log = l }
}

// ControlAnswer is the body of Control's answers.
type ControlAnswer struct {
	Action string `json:"action,omitempty"`
	// Error says why the action was refused; empty when it was taken.
	Error string `json:"error,omitempty"`
	// Worker is the worker's status after the action, when the request
	// passed every check (200, or 409 for a run of a paused worker); a
	// refused caller learns nothing of the worker.
	Worker *WorkerStatus `json:"worker,omitempty"`
}

// Control returns a handler with which operators act on the host's workers:
//
//	POST /workers/{name}/pause    pause the worker (Worker.Pause)
//	POST /workers/{name}/resume   resume it (Worker.Resume)
//	POST /workers/{name}/run      run it now (Worker.Wake: ends an idle or scheduled wait, not a backoff)
//
// Mount it under a prefix of your choice with http.StripPrefix:
//
//	mux.Handle("/backi/control/", http.StripPrefix("/backi/control", backihttp.Control(host)))
//
// It answers with a ControlAnswer as JSON: 200 with the worker's status
// after the action; 404 for an unknown worker or action; 405 for a method
// other than POST; 403 for a cross-origin request from a browser, or when
// the WithAuthorize function refuses, and 500 when it fails; 409 for a run
// of a paused worker, which runs nothing; 503 when the request ends before
// the WithAuthorize function answers. A paused worker's status says paused
// at once, while its iteration in flight finishes.
//
// Control acts on production work: mount it behind the service's own
// authentication. It refuses cross-origin requests (see
// http.CrossOriginProtection), so that another site cannot act through an
// operator's browser, and every action, taken or refused, is logged at Info
// with the worker, the action, the remote address and the outcome.
func Control(h *backi.Host, opts ...ControlOption) http.Handler {
	if h == nil {
		panic("backihttp: Control(nil): the host is nil")
	}
	c := &control{host: h, guard: newGuard(opts)}
	mux := http.NewServeMux()
	mux.HandleFunc("/workers/{name}/{action}", c.act)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, ControlAnswer{Error: "no such action: use POST /workers/{name}/pause, /resume or /run"})
	})
	return mux
}

type control struct {
	host *backi.Host
	*guard
}

// A guard checks a request for an action before it is taken: its method,
// its origin and the authorize function; and logs what was done.
type guard struct {
	authorize func(r *http.Request, target, action string) error
	log       *slog.Logger
	origins   *http.CrossOriginProtection // checked by check, so that its refusals are logged
}

func newGuard(opts []ControlOption) *guard {
	g := &guard{log: slog.Default(), origins: http.NewCrossOriginProtection()}
	for _, o := range opts {
		o(g)
	}
	return g
}

// check checks r's method, the one its action takes, and its origin, and
// returns the answer's status code and why r is refused, if it is.
func (g *guard) check(w http.ResponseWriter, r *http.Request, method string) (int, error) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		return http.StatusMethodNotAllowed, errors.New("use " + method)
	}
	if err := g.origins.Check(r); err != nil {
		return http.StatusForbidden, err
	}
	return http.StatusOK, nil
}

// allowed asks the authorize function, if any, whether r may take action on
// target, and returns the answer's status code and why r is refused.
func (g *guard) allowed(r *http.Request, target, action string) (int, error) {
	if g.authorize == nil {
		return http.StatusOK, nil
	}
	return g.ask(r, target, action)
}

func (c *control) act(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	code, err := c.take(w, r, name, action)
	ans := ControlAnswer{Action: action}
	attrs := []slog.Attr{slog.String("worker", name), slog.String("action", action), slog.String("remote", r.RemoteAddr), slog.Int("code", code)}
	if err != nil {
		ans.Error = err.Error()
		attrs = append(attrs, slog.String("refused", ans.Error))
	}
	c.say(r, slog.LevelInfo, "worker control", attrs...)
	if code == http.StatusOK || code == http.StatusConflict { // past every check: the caller may see the worker
		if wk := c.worker(name); wk != nil {
			st := NewWorkerStatus(wk.Status())
			ans.Worker = &st
		}
	}
	writeJSON(w, code, ans)
}

// say logs a record, containing a panic of the log handler.
func (c *guard) say(r *http.Request, level slog.Level, msg string, attrs ...slog.Attr) {
	defer func() { _ = recover() }()
	c.log.LogAttrs(r.Context(), level, msg, attrs...)
}

// take takes action on the worker called name, and returns the answer's
// status code and, if it was refused, why.
func (c *control) take(w http.ResponseWriter, r *http.Request, name, action string) (int, error) {
	if code, err := c.check(w, r, http.MethodPost); err != nil {
		return code, err
	}
	if action != ActionPause && action != ActionResume && action != ActionRun {
		return http.StatusNotFound, errors.New("no such action: pause, resume or run")
	}
	if code, err := c.allowed(r, name, action); err != nil {
		return code, err
	}
	wk := c.worker(name)
	if wk == nil {
		return http.StatusNotFound, errors.New("no such worker")
	}
	switch action {
	case ActionPause:
		wk.Pause()
	case ActionResume:
		wk.Resume()
	case ActionRun:
		if wk.Status().Paused {
			return http.StatusConflict, errors.New("the worker is paused: resume it first")
		}
		wk.Wake()
	}
	return http.StatusOK, nil
}

// ask asks the authorize function, on a goroutine of its own so that a
// panic or runtime.Goexit in it is contained, and returns the refusal's code
// and error, if any. It gives up when the request's context ends first.
func (c *guard) ask(r *http.Request, name, action string) (int, error) {
	type answer struct {
		refused error
		failed  string // why the function did not answer
	}
	done := make(chan answer, 1)
	go func() {
		normal := false
		defer func() {
			if p := recover(); p != nil {
				done <- answer{failed: "panic: " + safe.Text(p)}
			} else if !normal {
				done <- answer{failed: "runtime.Goexit"}
			}
		}()
		var a answer
		if err := c.authorize(r, name, action); err != nil {
			a.refused = errors.New(safe.Text(err))
		}
		normal = true
		done <- a
	}()
	select {
	case a := <-done:
		switch {
		case a.failed != "":
			c.say(r, slog.LevelError, "control: the authorize function failed", slog.String("target", name),
				slog.String("action", action), slog.String("err", a.failed))
			return http.StatusInternalServerError, errors.New("the authorization check failed")
		case a.refused != nil:
			return http.StatusForbidden, a.refused
		}
		return http.StatusOK, nil
	case <-r.Context().Done():
		return http.StatusServiceUnavailable, errors.New("the request ended before the authorization check")
	}
}

// worker returns the host's worker called name, or nil.
func (c *control) worker(name string) *backi.Worker {
	for _, w := range c.host.Workers() {
		if w.Name() == name {
			return w
		}
	}
	return nil
}
