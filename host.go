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
// cancels the other services' contexts.
type Service interface {
	Name() string
	Run(ctx context.Context) error
}

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
// letting in-flight iterations finish. d must be positive; the default is
// DefaultShutdownTimeout.
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
			h.services = append(h.services, hosted{o.Service, true})
		} else {
			h.services = append(h.services, hosted{s, false})
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
	return c, nil
}

func (h *Host) start() ([]hosted, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running {
		return nil, errors.New("backi: host is already running")
	}
	if len(h.services) == 0 {
		return nil, errors.New("backi: host has no services")
	}
	seen := make(map[string]bool)
	for i, s := range h.services {
		if s.Service == nil {
			return nil, fmt.Errorf("backi: host: service #%d is nil", i+1)
		}
		name := s.Name()
		if seen[name] {
			return nil, fmt.Errorf("backi: host: two services are named %q", name)
		}
		seen[name] = true
	}
	h.running = true
	return slices.Clone(h.services), nil
}

type result struct {
	i   int
	err error
}

// Run starts every service and blocks until all have returned. It stops them
// when ctx is done, when one of the configured signals arrives, or when a
// service returns an error (see Optional and WithEscalation for the
// exceptions); a service that returns nil just ends. Shutdown first drains
// services that have a Shutdown method (HTTP servers stop accepting and finish
// their requests), then cancels the others' contexts so that in-flight
// iterations finish, all within the shutdown timeout.
//
// Run returns nil after a requested stop or when every service ended on its
// own; the error of the service that stopped the host otherwise; and, joined
// to it, a *ShutdownError naming what was still running when the shutdown
// timeout passed. An invalid configuration is reported before anything starts.
func (h *Host) Run(ctx context.Context) error {
	cfg, err := h.config()
	if err != nil {
		return err
	}
	services, err := h.start()
	if err != nil {
		return err
	}
	defer func() {
		h.state.Store(int32(HostStopped))
		h.mu.Lock()
		h.running = false
		h.mu.Unlock()
	}()
	log := cfg.logger
	if len(cfg.signals) > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, cfg.signals...)
		defer stop()
	}

	// The services' context ends only when the host says so, after draining.
	base := context.WithValue(context.WithoutCancel(ctx), loggerKey{}, log)
	if cfg.stuckAfter > 0 {
		base = context.WithValue(base, stuckKey{}, cfg.stuckAfter)
	}
	if cfg.observer != nil {
		base = context.WithValue(base, observerKey{}, cfg.observer)
	}
	svcCtx, cancel := context.WithCancelCause(base)
	defer cancel(nil)
	results := make(chan result, len(services))
	alive := make([]bool, len(services))
	for i, s := range services {
		alive[i] = true
		go func() { results <- result{i, runService(svcCtx, s)} }()
	}
	left := len(services)
	h.state.Store(int32(HostRunning))
	log.LogAttrs(ctx, slog.LevelInfo, "host started", slog.Int("services", left))

	var cause error // why the host stops, when a service made it
	for requested := false; !requested && cause == nil && left > 0; {
		select {
		case <-ctx.Done():
			requested = true
			log.LogAttrs(ctx, slog.LevelInfo, "host stopping", slog.String("reason", context.Cause(ctx).Error()))
		case r := <-results:
			left--
			alive[r.i] = false
			name := services[r.i].Name()
			if stopsHost(services[r.i], r.err) {
				cause = fmt.Errorf("backi: service %q: %w", name, r.err)
				log.LogAttrs(ctx, slog.LevelError, "host stopping", slog.String("reason", "service ended"), slog.String("service", name), slog.Any("err", r.err))
			} else {
				logEnd(ctx, log, name, r.err)
			}
		}
	}
	if left == 0 {
		log.LogAttrs(ctx, slog.LevelInfo, "host stopped", slog.Duration("shutdown", 0))
		return cause
	}

	h.state.Store(int32(HostStopping))
	begun := time.Now()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	defer scancel()
	var errs []error
	if cause != nil {
		errs = append(errs, cause)
	}

	// Stage 1: drain the services that can drain, concurrently.
	var drains sync.WaitGroup
	var drainErrs []error
	var drainMu sync.Mutex
	for i, s := range services {
		d, ok := s.Service.(drainer)
		if !alive[i] || !ok {
			continue
		}
		drains.Go(func() {
			if err := d.Shutdown(sctx); err != nil {
				drainMu.Lock()
				drainErrs = append(drainErrs, fmt.Errorf("backi: service %q: shutdown: %w", s.Name(), err))
				drainMu.Unlock()
			}
		})
	}
	drained := make(chan struct{})
	go func() { drains.Wait(); close(drained) }()
	collect := func(r result) {
		left--
		alive[r.i] = false
		logEnd(ctx, log, services[r.i].Name(), r.err)
		if r.err != nil {
			errs = append(errs, fmt.Errorf("backi: service %q: %w", services[r.i].Name(), r.err))
		}
	}
	for waiting := true; waiting; {
		select {
		case <-drained:
			waiting = false
		case r := <-results:
			collect(r)
		case <-sctx.Done():
			waiting = false
		}
	}

	// Stage 2: cancel everything else and wait for it.
	cancel(errors.New("backi: host stopping"))
	for timedOut := false; !timedOut && left > 0; {
		select {
		case r := <-results:
			collect(r)
		case <-sctx.Done():
			timedOut = true
		}
	}
	select {
	case <-drained:
		errs = append(errs, drainErrs...)
	default:
	}
	if left > 0 {
		var names []string
		for i, s := range services {
			if alive[i] {
				names = append(names, s.Name())
			}
		}
		errs = append(errs, &ShutdownError{Timeout: cfg.shutdownTimeout, Running: names})
	}
	err = errors.Join(errs...)
	took := time.Since(begun)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "host stopped", slog.Duration("shutdown", took), slog.Any("err", err))
	} else {
		log.LogAttrs(ctx, slog.LevelInfo, "host stopped", slog.Duration("shutdown", took))
	}
	return err
}

// ShutdownError names the services that were still running when the host's
// shutdown timeout passed.
type ShutdownError struct {
	Timeout time.Duration
	Running []string
}

func (e *ShutdownError) Error() string {
	return fmt.Sprintf("backi: shutdown timed out after %v; still running: %s", e.Timeout, strings.Join(e.Running, ", "))
}

// stopsHost reports whether a service's end stops the host.
func stopsHost(s hosted, err error) bool {
	var esc *EscalationError
	if errors.As(err, &esc) {
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

func runService(ctx context.Context, s Service) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return s.Run(ctx)
}

// HTTPServer returns a Service that serves srv with ListenAndServe (or
// ListenAndServeTLS when srv.TLSConfig has certificates). On shutdown it stops
// accepting connections and waits for the requests in flight to finish; when
// the host's timeout passes first it closes the remaining connections. Its
// name is "http" followed by srv.Addr.
func HTTPServer(srv *http.Server) Service { return &httpServer{srv: srv} }

type httpServer struct{ srv *http.Server }

func (s *httpServer) Name() string { return "http " + s.srv.Addr }

func (s *httpServer) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() {
		if t := s.srv.TLSConfig; t != nil && (len(t.Certificates) > 0 || t.GetCertificate != nil) {
			served <- s.srv.ListenAndServeTLS("", "")
		} else {
			served <- s.srv.ListenAndServe()
		}
	}()
	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultShutdownTimeout)
		defer cancel()
		err := s.Shutdown(sctx)
		<-served
		return err
	}
}

// Shutdown stops accepting, waits for in-flight requests until ctx is done,
// then closes what is left.
func (s *httpServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}
