package backi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/backi-go/backi/internal/safe"
)

// DefaultShutdownTimeout bounds a host's shutdown when no WithShutdownTimeout
// option is given. It leaves half of Kubernetes' default 30 s termination
// grace period to spare.
const DefaultShutdownTimeout = 15 * time.Second

// Service is anything a Host runs: Run blocks until the service ends and
// returns soon after ctx is done. A *Worker is a Service.
//
// A Service that also has a method Shutdown(ctx context.Context) error (as the
// one HTTPServer returns does) is asked to drain with it before the host
// cancels the other services' contexts; ctx ends at the host's shutdown
// deadline.
type Service interface {
	Name() string
	Run(ctx context.Context) error
}

// ErrHostStopping is the cause with which a Host cancels its services'
// context when it stops them, so that an iteration can tell the host's
// shutdown from other ends of its context with
// errors.Is(context.Cause(ctx), backi.ErrHostStopping).
var ErrHostStopping = errors.New("backi: host stopping")

type drainer interface {
	Shutdown(ctx context.Context) error
}

// Optional marks s so that its end, with or without an error, is logged and
// leaves the host running. An *EscalationError with action StopHost still
// stops the host.
func Optional(s Service) Service { return &optional{s} }

type optional struct{ Service }

type hostConfig struct {
	shutdownTimeout time.Duration
	signals         []os.Signal
	logger          *slog.Logger
	stuckAfter      time.Duration
	observer        Observer
}

type hostOptionFunc func(*hostConfig) error

func (f hostOptionFunc) applyHost(c *hostConfig) error { return f(c) }

// WithShutdownTimeout bounds the whole shutdown: draining HTTP servers and
// letting in-flight iterations finish. HTTP servers may drain for all of d;
// the other services are cancelled once the drains have finished or d/2 has
// passed, whichever comes first, so that a slow drain leaves them at least
// half of d. d must be positive; the default is DefaultShutdownTimeout.
func WithShutdownTimeout(d time.Duration) HostOption {
	return hostOptionFunc(func(c *hostConfig) error {
		if d <= 0 {
			return fmt.Errorf("WithShutdownTimeout(%v): need a positive duration", d)
		}
		c.shutdownTimeout = d
		return nil
	})
}

// WithSignals sets the OS signals that stop the host. The default is SIGINT
// and SIGTERM. WithSignals() with none installs no signal handler: use it when
// the host is embedded in a program that handles signals itself, and in tests.
func WithSignals(sigs ...os.Signal) HostOption {
	return hostOptionFunc(func(c *hostConfig) error {
		if slices.Contains(sigs, nil) {
			return errors.New("WithSignals: nil signal")
		}
		c.signals = slices.Clone(sigs)
		return nil
	})
}

// Host runs services together and stops them in order. Make one with NewHost.
type Host struct {
	opts []HostOption

	mu       sync.Mutex
	services []hosted
	running  bool
	state    atomic.Int32 // a HostState
}

// HostState is where a host is in its life.
type HostState int32

const (
	// HostNew: Run has not been called, or has not started the services yet.
	HostNew HostState = iota
	// HostRunning: every service has been started.
	HostRunning
	// HostStopping: shutdown has begun.
	HostStopping
	// HostStopped: Run has returned.
	HostStopped
)

var hostStateNames = [...]string{"new", "running", "stopping", "stopped"}

func (s HostState) String() string {
	if s >= 0 && int(s) < len(hostStateNames) {
		return hostStateNames[s]
	}
	return fmt.Sprintf("HostState(%d)", int32(s))
}

// State returns where the host is in its life. It never blocks.
func (h *Host) State() HostState { return HostState(h.state.Load()) }

// Workers returns the workers among the host's services, in the order they
// were added.
func (h *Host) Workers() []*Worker {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ws []*Worker
	for _, s := range h.services {
		if w, ok := s.Service.(*Worker); ok {
			ws = append(ws, w)
		}
	}
	return ws
}

type hosted struct {
	Service
	optional bool
	name     string // read once, by check
}

// NewHost returns a host configured by opts. It starts nothing.
func NewHost(opts ...HostOption) *Host { return &Host{opts: opts} }

// Add adds services to the host. It must be called before Run: it panics
// while Run is running, since the service would never be started.
func (h *Host) Add(services ...Service) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running {
		panic("backi: Host.Add called while the host is running")
	}
	for _, s := range services {
		if o, ok := s.(*optional); ok {
			h.services = append(h.services, hosted{Service: o.Service, optional: true})
		} else {
			h.services = append(h.services, hosted{Service: s})
		}
	}
}

func (h *Host) config() (hostConfig, error) {
	c := hostConfig{shutdownTimeout: DefaultShutdownTimeout, signals: []os.Signal{os.Interrupt, syscall.SIGTERM}}
	for _, o := range h.opts {
		if o == nil {
			return c, errors.New("backi: host: nil HostOption")
		}
		if err := o.applyHost(&c); err != nil {
			return c, fmt.Errorf("backi: host: %w", err)
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.logger = slog.New(contained(c.logger.Handler()))
	return c, nil
}

// start claims the host for one Run and checks its services, none of which
// it calls while it holds the lock. A failed check releases the claim.
func (h *Host) start() ([]hosted, error) {
	services, err := h.claim()
	if err != nil {
		return nil, err
	}
	if err := check(services); err != nil {
		h.mu.Lock()
		h.running = false
		h.mu.Unlock()
		return nil, err
	}
	return services, nil
}

func (h *Host) claim() ([]hosted, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running {
		return nil, errors.New("backi: host is already running")
	}
	if len(h.services) == 0 {
		return nil, errors.New("backi: host has no services")
	}
	h.running = true
	return slices.Clone(h.services), nil
}

// A checker reports its configuration error, if any, without running.
// *Worker and the service HTTPServer returns are checkers.
type checker interface{ check() error }

// check reads each service's name, and reports the first service that is
// nil, is misconfigured or shares another's name, so that a host with one
// invalid service starts none.
func check(services []hosted) error {
	seen := make(map[string]bool)
	for i := range services {
		s := &services[i]
		if s.Service == nil {
			return fmt.Errorf("backi: host: service #%d is nil", i+1)
		}
		name, err := protect(func() (string, error) { return s.Name(), nil })
		if err != nil {
			return fmt.Errorf("backi: host: service #%d: Name: %w", i+1, err)
		}
		s.name = name
		if c, ok := s.Service.(checker); ok {
			cerr, err := protect(func() (error, error) { return c.check(), nil })
			if err == nil {
				err = cerr
			}
			if err != nil && name == "" {
				return fmt.Errorf("backi: host: service #%d: %w", i+1, err)
			} else if err != nil {
				return fmt.Errorf("backi: host: service %q: %w", name, err)
			}
		}
		if seen[name] {
			return fmt.Errorf("backi: host: two services are named %q", name)
		}
		seen[name] = true
	}
	return nil
}

type result struct {
	i   int
	err error
}

// Run starts every service and blocks until all have returned. It stops them
// when ctx is done, when one of the configured signals arrives, or when a
// service returns an error (see Optional and WithEscalation for the
// exceptions); a service that returns nil just ends.
//
// Shutdown first drains the services that have a Shutdown method (HTTP
// servers stop accepting and finish their requests), then cancels the
// others' contexts, with cause ErrHostStopping, so that in-flight iterations
// finish, all within the shutdown timeout (WithShutdownTimeout). The others
// are cancelled as soon as every drain has finished or half the timeout has
// passed, whichever comes first: a slow drain cannot take the workers' time,
// and drains go on until the full timeout.
//
// Run returns nil after a clean requested stop or when every service ended
// on its own. Otherwise it returns the error of the service that stopped the
// host, joined with the errors that services and their Shutdown methods
// returned during the shutdown and with a *ShutdownError naming what still
// ran or drained when the shutdown timeout passed. An invalid configuration,
// of the host or of any service, is reported before anything starts.
func (h *Host) Run(ctx context.Context) error {
	cfg, err := h.config()
	if err != nil {
		return err
	}
	services, err := h.start()
	if err != nil {
		return err
	}
	defer h.release()
	if len(cfg.signals) > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, cfg.signals...)
		defer stop()
	}

	r := launch(ctx, cfg, services)
	defer r.cancel(nil)
	h.state.Store(int32(HostRunning))
	cfg.logger.LogAttrs(ctx, slog.LevelInfo, "host started", slog.Int("services", len(services)))
	cause := r.awaitStop(ctx)
	if r.left == 0 {
		cfg.logger.LogAttrs(ctx, slog.LevelInfo, "host stopped", slog.Duration("shutdown", 0))
		return cause
	}

	h.state.Store(int32(HostStopping))
	begun := time.Now()
	err = errors.Join(cause, r.shutdown(ctx))
	r.report(ctx, err, time.Since(begun))
	return err
}

// release ends the Run that start claimed.
func (h *Host) release() {
	h.state.Store(int32(HostStopped))
	h.mu.Lock()
	h.running = false
	h.mu.Unlock()
}

// A hostRun is one Run of a Host: the services, which of them still run, and
// the context they run under.
type hostRun struct {
	cfg      hostConfig
	services []hosted
	results  chan result
	alive    []bool
	left     int                        // how many services are alive
	cancel   context.CancelCauseFunc    // ends the services' context
	deadline *atomic.Pointer[time.Time] // the shutdown's, in that context

	drains     chan result // the Shutdown methods' results
	draining   []bool      // whose Shutdown has not returned
	drainsLeft int         // how many Shutdown calls have not returned
	errs       []error     // what went wrong during shutdown
}

// launch starts every service on a goroutine of its own, under a context
// that carries the host's logger, observer, stuck threshold and shutdown
// deadline, and ends only when the host cancels it.
func launch(ctx context.Context, cfg hostConfig, services []hosted) *hostRun {
	deadline := new(atomic.Pointer[time.Time])
	base := context.WithValue(context.WithoutCancel(ctx), loggerKey{}, cfg.logger)
	base = context.WithValue(base, deadlineKey{}, deadline)
	if cfg.stuckAfter > 0 {
		base = context.WithValue(base, stuckKey{}, cfg.stuckAfter)
	}
	if cfg.observer != nil {
		base = context.WithValue(base, observerKey{}, cfg.observer)
	}
	svcCtx, cancel := context.WithCancelCause(base)
	r := &hostRun{
		cfg:      cfg,
		services: services,
		results:  make(chan result, len(services)),
		alive:    make([]bool, len(services)),
		left:     len(services),
		cancel:   cancel,
		deadline: deadline,
		drains:   make(chan result, len(services)),
		draining: make([]bool, len(services)),
	}
	for i, s := range services {
		r.alive[i] = true
		go callThen(svcCtx, s.Run, func(err error) { r.results <- result{i, err} })
	}
	return r
}

// awaitStop waits until ctx is done (a requested stop or a signal), a
// service's end stops the host, or every service has ended. It returns the
// error of the service that stopped the host, if one did.
func (r *hostRun) awaitStop(ctx context.Context) error {
	log := r.cfg.logger
	for r.left > 0 {
		select {
		case <-ctx.Done():
			log.LogAttrs(ctx, slog.LevelInfo, "host stopping", slog.String("reason", safe.Text(context.Cause(ctx))))
			return nil
		case res := <-r.results:
			s := r.ended(res)
			if stopsHost(s, res.err) {
				log.LogAttrs(ctx, slog.LevelError, "host stopping", slog.String("reason", "service ended"), slog.String("service", s.name), slog.Any("err", res.err))
				return fmt.Errorf("backi: service %q: %w", s.name, res.err)
			}
			logEnd(ctx, log, s.name, res.err)
		}
	}
	return nil
}

// ended records the end of a service and returns it.
func (r *hostRun) ended(res result) hosted {
	r.left--
	r.alive[res.i] = false
	return r.services[res.i]
}

// collect records the end of a service during shutdown: an optional
// service's error is logged, not returned.
func (r *hostRun) collect(ctx context.Context, res result) {
	s := r.ended(res)
	logEnd(ctx, r.cfg.logger, s.name, res.err)
	if res.err != nil && !s.optional {
		r.errs = append(r.errs, fmt.Errorf("backi: service %q: %w", s.name, res.err))
	}
}

// shutdown stops the services still running within the shutdown timeout: it
// drains those that can drain, cancels the others' context once the drains
// have finished or half the timeout has passed, and waits for everything
// until the timeout. It returns what went wrong, a *ShutdownError among it
// when something outlived the timeout.
func (r *hostRun) shutdown(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.shutdownTimeout)
	r.deadline.Store(&deadline)
	sctx, scancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer scancel()
	r.drain(sctx)
	half, hcancel := context.WithTimeout(sctx, r.cfg.shutdownTimeout/2)
	defer hcancel()
	r.wait(ctx, half.Done(), func() bool { return r.drainsLeft == 0 })
	r.cancel(ErrHostStopping)
	if !r.wait(ctx, sctx.Done(), func() bool { return r.left == 0 && r.drainsLeft == 0 }) {
		r.errs = append(r.errs, &ShutdownError{Timeout: r.cfg.shutdownTimeout, Running: r.running()})
	}
	return errors.Join(r.errs...)
}

// drain calls Shutdown on each running service that has one, each on a
// goroutine that ends when its Shutdown returns, which ctx bounds.
func (r *hostRun) drain(ctx context.Context) {
	for i, s := range r.services {
		d, ok := s.Service.(drainer)
		if !r.alive[i] || !ok {
			continue
		}
		r.draining[i] = true
		r.drainsLeft++
		go callThen(ctx, d.Shutdown, func(err error) { r.drains <- result{i, err} })
	}
}

// wait collects the services' ends and the drains' results until done
// holds or stop is closed, and reports whether done holds.
func (r *hostRun) wait(ctx context.Context, stop <-chan struct{}, done func() bool) bool {
	for !done() {
		select {
		case res := <-r.results:
			r.collect(ctx, res)
		case res := <-r.drains:
			r.drainsLeft--
			r.draining[res.i] = false
			if res.err != nil {
				r.errs = append(r.errs, fmt.Errorf("backi: service %q: shutdown: %w", r.services[res.i].name, res.err))
			}
		case <-stop:
			return false
		}
	}
	return true
}

// running names the services still alive or draining.
func (r *hostRun) running() []string {
	var names []string
	for i, s := range r.services {
		if r.alive[i] || r.draining[i] {
			names = append(names, s.name)
		}
	}
	return names
}

// report logs the end of the shutdown, which took took and ended with err.
func (r *hostRun) report(ctx context.Context, err error, took time.Duration) {
	if err != nil {
		r.cfg.logger.LogAttrs(ctx, slog.LevelError, "host stopped", slog.Duration("shutdown", took), slog.Any("err", err))
		return
	}
	r.cfg.logger.LogAttrs(ctx, slog.LevelInfo, "host stopped", slog.Duration("shutdown", took))
}

// ShutdownError names the services that were still running, or still
// draining, when the host's shutdown timeout passed.
type ShutdownError struct {
	Timeout time.Duration
	Running []string
}

func (e *ShutdownError) Error() string {
	return fmt.Sprintf("backi: shutdown timed out after %v; still running: %s", e.Timeout, strings.Join(e.Running, ", "))
}

// stopsHost reports whether a service's end stops the host.
func stopsHost(s hosted, err error) bool {
	if esc, ok := as[*EscalationError](err); ok {
		return esc.Action == StopHost
	}
	return err != nil && !s.optional
}

func logEnd(ctx context.Context, log *slog.Logger, name string, err error) {
	if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "service ended", slog.String("service", name), slog.Any("err", err))
		return
	}
	log.LogAttrs(ctx, slog.LevelInfo, "service ended", slog.String("service", name))
}

// deadlineKey carries a host's shutdown deadline to its services, as an
// *atomic.Pointer[time.Time] that is nil until the shutdown begins.
type deadlineKey struct{}

// shutdownDeadline returns when a service whose ctx is done must have shut
// down: the host's shutdown deadline, or DefaultShutdownTimeout from now
// outside a host.
func shutdownDeadline(ctx context.Context) time.Time {
	if d, ok := ctx.Value(deadlineKey{}).(*atomic.Pointer[time.Time]); ok {
		if t := d.Load(); t != nil {
			return *t
		}
	}
	return time.Now().Add(DefaultShutdownTimeout)
}

// HTTPServer returns a Service that serves srv with ListenAndServe (or
// ListenAndServeTLS when srv.TLSConfig has certificates). On shutdown it stops
// accepting connections and waits for the requests in flight to finish; when
// the host's timeout passes first it closes the remaining connections. Its
// name is "http" followed by srv.Addr.
//
// When its context ends before its Shutdown method is called (it runs
// outside a host, or inside a Service of the user's that hides Shutdown), Run
// shuts the server down itself, within the host's shutdown deadline, or
// within DefaultShutdownTimeout outside a host.
//
// An *http.Server cannot serve again once it has been shut down: running the
// service again after a shutdown, or after srv was shut down by other means,
// returns an error, and the host needs a new *http.Server. (A Shutdown that
// comes before Run has begun, as when a host stops as soon as it starts, is
// a requested stop: that Run returns nil.) Host.Run reports a nil srv before
// anything starts.
func HTTPServer(srv *http.Server) Service { return &httpServer{srv: srv} }

type httpServer struct {
	srv *http.Server

	mu    sync.Mutex
	state httpState
}

// httpState is where the service's server is in its life: it serves once.
type httpState int

const (
	httpIdle          httpState = iota // not served yet, or it could not listen
	httpServing                        // Run is running
	httpShutBeforeRun                  // Shutdown came first: Run returns nil at once
	httpShut                           // shut down, by Shutdown or by other means
)

var errNilServer = errors.New("backi: HTTPServer(nil): server is nil")

func (s *httpServer) Name() string {
	if s.srv == nil {
		return "http"
	}
	return "http " + s.srv.Addr
}

func (s *httpServer) check() error {
	if s.srv == nil {
		return errNilServer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == httpShut || s.state == httpShutBeforeRun {
		return s.errShut()
	}
	return nil
}

func (s *httpServer) errShut() error {
	return fmt.Errorf("backi: HTTPServer %q: the server was shut down and cannot serve again; give the host a new *http.Server", s.srv.Addr)
}

func (s *httpServer) Run(ctx context.Context) error {
	if s.srv == nil {
		return errNilServer
	}
	if serve, err := s.begin(); !serve {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.serve() }()
	select {
	case err := <-served:
		return s.end(ctx, err)
	case <-ctx.Done():
		sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), shutdownDeadline(ctx))
		defer cancel()
		err := s.Shutdown(sctx)
		<-served
		return err
	}
}

// begin claims the server for one Run. When serve is false Run returns err
// at once: the server is already running, was shut down before, or was shut
// down before this Run could begin (nil, a requested stop).
func (s *httpServer) begin() (serve bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case httpServing:
		return false, fmt.Errorf("backi: HTTPServer %q is already running", s.srv.Addr)
	case httpShut:
		return false, s.errShut()
	case httpShutBeforeRun:
		s.state = httpShut
		return false, nil
	}
	s.state = httpServing
	return true, nil
}

func (s *httpServer) serve() error {
	if t := s.srv.TLSConfig; t != nil && (len(t.Certificates) > 0 || t.GetCertificate != nil) {
		return s.srv.ListenAndServeTLS("", "")
	}
	return s.srv.ListenAndServe()
}

// end tells what serving's end with err means: nil after Shutdown or once
// ctx is done; an error when the server was shut down by other means, which
// nobody asked the service for; and err itself when the server could not
// serve, which leaves it free to try again.
func (s *httpServer) end(ctx context.Context, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == httpShut {
		return nil
	}
	if !errors.Is(err, http.ErrServerClosed) {
		s.state = httpIdle
		return err
	}
	s.state = httpShut
	if ctx.Err() != nil {
		return nil
	}
	return s.errShut()
}

// Shutdown stops accepting, waits for in-flight requests until ctx is done,
// then closes what is left. The server cannot serve again afterwards.
func (s *httpServer) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	s.mu.Lock()
	switch s.state {
	case httpIdle:
		s.state = httpShutBeforeRun
	case httpServing:
		s.state = httpShut
	}
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}
