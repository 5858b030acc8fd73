package backi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/internal/demotest"
)

func quietHost(opts ...backi.HostOption) *backi.Host {
	return backi.NewHost(append([]backi.HostOption{backi.WithSignals(), backi.WithLogger(quiet)}, opts...)...)
}

// blocking is a worker whose iterations last until ctx is done.
func blocking(name string) *backi.Worker {
	return backi.Loop(name, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
}

func TestHostStopsEveryServiceWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		ctx, cancel := context.WithCancel(t.Context())
		a, b := blocking("a"), blocking("b")
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(log))
		h.Add(a, b)
		time.AfterFunc(time.Minute, cancel)
		if err := h.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil after a requested stop", err)
		}
		for _, w := range []*backi.Worker{a, b} {
			if st := w.Status(); st.State != backi.StateStopped {
				t.Fatalf("%s: %v, want stopped", st.Name, st.State)
			}
		}
		if len(rec.find("host started")) != 1 || len(rec.find("host stopped")) != 1 {
			t.Fatalf("want one start and one stop line, got %+v", rec.all())
		}
		if _, ok := rec.find("host stopped")[0].Attrs["shutdown"]; !ok {
			t.Fatalf("the stop line does not say how long shutdown took")
		}
		// The host's logger reached the workers, which had none of their own.
		if len(rec.find("worker started")) != 2 {
			t.Fatalf("workers did not log through the host's logger: %+v", rec.all())
		}
		if errs := rec.atLeast(slog.LevelWarn); len(errs) != 0 {
			t.Fatalf("a clean shutdown logged problems: %v", errs)
		}
	})
}

func TestServiceErrorStopsTheHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		other := blocking("other")
		h := quietHost()
		h.Add(other, backi.Loop("broken", func(ctx context.Context) error {
			time.Sleep(time.Second)
			return backi.Stop(errFail)
		}, backi.WithLogger(quiet)))
		err := h.Run(t.Context())
		if !errors.Is(err, errFail) || !strings.Contains(err.Error(), `service "broken"`) {
			t.Fatalf("Run = %v, want the broken service's error", err)
		}
		if other.Status().State != backi.StateStopped {
			t.Fatal("the other service was not stopped")
		}
	})
}

func TestOptionalAndFinishedServicesLeaveTheHostRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		main := blocking("main")
		h := quietHost()
		h.Add(main,
			backi.Optional(backi.Loop("optional", func(ctx context.Context) error { return backi.Stop(errFail) }, backi.WithLogger(quiet))),
			backi.Loop("one-shot", func(ctx context.Context) error { return backi.Stop(nil) }, backi.WithLogger(quiet)),
			backi.Loop("escalates", func(ctx context.Context) error { return errFail },
				backi.WithLogger(quiet), backi.WithEscalation(1, time.Minute, backi.StopWorker)),
		)
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		time.Sleep(time.Hour)
		synctest.Wait()
		if st := main.Status(); st.State != backi.StateRunning {
			t.Fatalf("main is %v, want still running", st.State)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	})
}

func TestEscalationToStopHostStopsEvenFromAnOptionalService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := quietHost()
		h.Add(blocking("main"), backi.Optional(backi.Loop("fatal", func(ctx context.Context) error { return errFail },
			backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(400*time.Millisecond)),
			backi.WithEscalation(3, time.Minute, backi.StopHost))))
		start := time.Now()
		err := h.Run(t.Context())
		var esc *backi.EscalationError
		if !errors.As(err, &esc) || esc.Worker != "fatal" {
			t.Fatalf("Run = %v, want the escalation", err)
		}
		if d := time.Since(start); d != 800*time.Millisecond {
			t.Fatalf("host stopped after %v, want 800ms (three failures 400ms apart)", d)
		}
	})
}

func TestInFlightIterationsFinishOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var finished atomic.Bool
		w := backi.Loop("writer", func(ctx context.Context) error {
			if finished.Load() {
				<-ctx.Done()
				return nil
			}
			time.Sleep(5 * time.Second) // a write that must not be cut off
			finished.Store(true)
			return nil
		})
		h := quietHost()
		h.Add(w)
		time.AfterFunc(time.Second, cancel)
		if err := h.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if !finished.Load() {
			t.Fatal("the host returned before the in-flight iteration finished")
		}
	})
}

type stubborn struct{ release chan struct{} }

func (s stubborn) Name() string { return "stubborn" }
func (s stubborn) Run(ctx context.Context) error {
	<-s.release
	return nil
}

func TestShutdownTimeoutNamesWhatIsStillRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		ctx, cancel := context.WithCancel(t.Context())
		s := stubborn{make(chan struct{})}
		defer close(s.release)
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(log), backi.WithShutdownTimeout(3*time.Second))
		h.Add(blocking("polite"), s)
		cancel()
		start := time.Now()
		err := h.Run(ctx)
		var se *backi.ShutdownError
		if !errors.As(err, &se) || len(se.Running) != 1 || se.Running[0] != "stubborn" {
			t.Fatalf("Run = %v, want a ShutdownError naming only stubborn", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("Run returned after %v, want the 3s timeout", d)
		}
		if len(rec.find("host stopped")) != 1 || rec.find("host stopped")[0].Level != slog.LevelError {
			t.Fatalf("the stop line does not report the timeout: %+v", rec.all())
		}
	})
}

type panicking struct{}

func (panicking) Name() string                  { return "panicking" }
func (panicking) Run(ctx context.Context) error { panic("service") }

func TestServicePanicStopsTheHostNotTheProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := quietHost()
		h.Add(blocking("other"), panicking{})
		var pe *backi.PanicError
		if err := h.Run(t.Context()); !errors.As(err, &pe) || pe.Value != "service" {
			t.Fatalf("Run = %v, want the PanicError", err)
		}
	})
}

func TestHostConfigurationErrors(t *testing.T) {
	h := quietHost()
	if err := h.Run(context.Background()); err == nil || err.Error() != "backi: host has no services" {
		t.Errorf("empty host: %v", err)
	}
	h = quietHost()
	h.Add(blocking("a"), nil)
	if err := h.Run(context.Background()); err == nil || err.Error() != "backi: host: service #2 is nil" {
		t.Errorf("nil service: %v", err)
	}
	h = quietHost()
	h.Add(blocking("a"), blocking("a"))
	if err := h.Run(context.Background()); err == nil || !strings.Contains(err.Error(), `two services are named "a"`) {
		t.Errorf("duplicate names: %v", err)
	}
	for _, opt := range []struct {
		o    backi.HostOption
		want string
	}{
		{backi.WithShutdownTimeout(0), "backi: host: WithShutdownTimeout(0s)"},
		{backi.WithSignals(nil), "backi: host: WithSignals: nil signal"},
		{backi.WithLogger(nil), "backi: host: WithLogger(nil)"},
		{backi.WithStuckAfter(-time.Second), "backi: host: WithStuckAfter(-1s)"},
		{backi.WithObserver(nil), "backi: host: WithObserver(nil)"},
		{nil, "backi: host: nil HostOption"},
	} {
		h = backi.NewHost(opt.o)
		h.Add(blocking("a"))
		if err := h.Run(context.Background()); err == nil || !strings.Contains(err.Error(), opt.want) {
			t.Errorf("Run = %v, want %q", err, opt.want)
		}
	}
}

func TestAddWhileRunningPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		h := quietHost()
		h.Add(blocking("a"))
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		synctest.Wait()
		func() {
			defer func() {
				if v := recover(); v == nil || !strings.Contains(v.(string), "while the host is running") {
					t.Errorf("Add during Run: recovered %v", v)
				}
			}()
			h.Add(blocking("b"))
		}()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestHTTPDrainsBeforeWorkersAreCancelled uses real time and a real socket:
// the request in flight at shutdown completes, and only then are workers
// cancelled.
func TestHTTPDrainsBeforeWorkersAreCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	inRequest := make(chan struct{})
	var requestDone, workerCancelled atomic.Int64
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inRequest)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "drained")
		requestDone.Store(time.Now().UnixNano())
	})}
	worker := backi.Loop("worker", func(ctx context.Context) error {
		<-ctx.Done()
		workerCancelled.Store(time.Now().UnixNano())
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	h := quietHost(backi.WithShutdownTimeout(5 * time.Second))
	h.Add(backi.HTTPServer(srv), worker)
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()

	body := make(chan string)
	go func() {
		for {
			resp, err := http.Get("http://" + addr)
			if err != nil {
				time.Sleep(10 * time.Millisecond) // not listening yet
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body <- string(b)
			return
		}
	}()
	<-inRequest
	cancel()
	if got := <-body; got != "drained" {
		t.Fatalf("the request in flight got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if requestDone.Load() == 0 || workerCancelled.Load() < requestDone.Load() {
		t.Fatalf("the worker was cancelled before the HTTP server drained")
	}
	if _, err := http.Get("http://" + addr); err == nil {
		t.Fatal("the server still accepts connections after Run returned")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestHTTPServerThatCannotListenStopsTheHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := quietHost()
	h.Add(backi.HTTPServer(&http.Server{Addr: ln.Addr().String()}), blocking("w"))
	err = h.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `service "http `+ln.Addr().String()+`"`) {
		t.Fatalf("Run = %v, want the listen error", err)
	}
}

// TestSignalStopsTheHost runs a host with the default signal handling in a
// child process and sends it SIGTERM and SIGINT.
func TestSignalStopsTheHost(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := demotest.Start(t)
			p.WaitFor("worker started")
			p.StopWith(sig, 5*time.Second)
			if want := sig.String() + " signal received"; !strings.Contains(p.Log(), want) || !strings.Contains(p.Log(), "host stopped") {
				t.Fatalf("the log does not say %q and host stopped:\n%s", want, p.Log())
			}
		})
	}
}

// signalChild is the program TestSignalStopsTheHost runs.
func signalChild() {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	h := backi.NewHost(backi.WithLogger(log))
	h.Add(backi.Loop("tick", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	}))
	if err := h.Run(context.Background()); err != nil {
		os.Exit(3)
	}
}

func TestHostCancelsItsServicesWithErrHostStopping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		causes := make(chan error, 1)
		w := backi.Loop("w", func(ctx context.Context) error {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return nil
		})
		h := quietHost()
		h.Add(w)
		time.AfterFunc(time.Second, cancel)
		if err := h.Run(ctx); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if cause := <-causes; !errors.Is(cause, backi.ErrHostStopping) {
			t.Fatalf("the iteration's context ended with cause %v, want ErrHostStopping", cause)
		}
	})
}

func TestHostChecksEveryServiceBeforeStartingAny(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  backi.Service
		want string
	}{
		{"misconfigured", backi.Loop("bad", func(ctx context.Context) error { return nil }, backi.WithConcurrency(0)),
			`backi: host: service "bad": backi: worker "bad": WithConcurrency(0)`},
		{"zero", new(backi.Worker), "backi: host: service #2: backi: the Worker was not made by Loop or Continuous"},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var started atomic.Bool
				good := backi.Loop("good", func(ctx context.Context) error {
					started.Store(true)
					<-ctx.Done()
					return nil
				})
				h := quietHost()
				h.Add(good, c.bad)
				if err := h.Run(t.Context()); err == nil || !strings.HasPrefix(err.Error(), c.want) {
					t.Fatalf("Run = %v, want %q", err, c.want)
				}
				if started.Load() || good.Status().State != backi.StateNew || h.State() != backi.HostNew {
					t.Fatalf("the host started something: good ran %v, is %v; host %v", started.Load(), good.Status().State, h.State())
				}
			})
		})
	}
}

func TestHTTPServerNilIsReportedNotRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := backi.HTTPServer(nil)
		if name := svc.Name(); name != "http" {
			t.Errorf("Name = %q", name)
		}
		if err := svc.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "HTTPServer(nil)") {
			t.Errorf("Run = %v, want an error naming HTTPServer(nil)", err)
		}
		if err := svc.(interface{ Shutdown(context.Context) error }).Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		var started atomic.Bool
		h := quietHost()
		h.Add(backi.Loop("w", func(ctx context.Context) error { started.Store(true); <-ctx.Done(); return nil }), svc)
		if err := h.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "backi: HTTPServer(nil): server is nil") {
			t.Fatalf("Run = %v, want the nil server reported", err)
		}
		if started.Load() {
			t.Fatal("the host started a worker beside a nil server")
		}
	})
}

// freeAddr returns a local address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// awaitServing waits until something answers HTTP at addr.
func awaitServing(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr); err == nil {
			resp.Body.Close()
			http.DefaultClient.CloseIdleConnections()
			return
		}
	}
	t.Fatalf("nothing serves at %s", addr)
}

// TestHTTPServerCannotServeTwice runs a host with a real server twice: the
// second Run reports that the server cannot serve again instead of returning
// nil with nothing listening.
func TestHTTPServerCannotServeTwice(t *testing.T) {
	addr := freeAddr(t)
	svc := backi.HTTPServer(&http.Server{Addr: addr, Handler: http.NotFoundHandler()})
	h := quietHost()
	h.Add(svc)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	awaitServing(t, addr)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first Run = %v", err)
	}
	err := h.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "cannot serve again") || !strings.Contains(err.Error(), "new *http.Server") {
		t.Fatalf("second Run = %v, want an error saying to give the host a new *http.Server", err)
	}
	if err := svc.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "cannot serve again") {
		t.Fatalf("the service's own Run after a shutdown = %v", err)
	}
}

// TestHTTPServerShutDownByOthersStopsTheHost shuts the server down behind
// the host's back: the service's end is an error, not a clean end that
// leaves the host running with nothing listening.
func TestHTTPServerShutDownByOthersStopsTheHost(t *testing.T) {
	addr := freeAddr(t)
	srv := &http.Server{Addr: addr, Handler: http.NotFoundHandler()}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	h := quietHost()
	h.Add(backi.HTTPServer(srv), blocking("w"))
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	awaitServing(t, addr)
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if err == nil || !strings.Contains(err.Error(), `service "http `+addr+`"`) || !strings.Contains(err.Error(), "cannot serve again") {
		t.Fatalf("Run = %v, want the server's unrequested end", err)
	}
}

// TestHTTPServerStoppedAtOnceEndsCleanly stops a host whose context is done
// before it starts: the server's Shutdown may come before its Run begins,
// and that is still a requested stop.
func TestHTTPServerStoppedAtOnceEndsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for range 20 {
		h := quietHost()
		h.Add(backi.HTTPServer(&http.Server{Addr: freeAddr(t), Handler: http.NotFoundHandler()}))
		if err := h.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	}
}

// draining is a Service with a Shutdown method that takes drainFor, or
// lasts until its ctx is done when drainFor is 0. Its Run lasts until its
// ctx is done.
type draining struct{ drainFor time.Duration }

func (draining) Name() string { return "draining" }
func (draining) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (d draining) Shutdown(ctx context.Context) error {
	if d.drainFor > 0 {
		time.Sleep(d.drainFor)
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestSlowDrainLeavesTheWorkersHalfTheShutdownTimeout(t *testing.T) {
	for _, c := range []struct {
		name     string
		drainFor time.Duration
		cancelAt time.Duration // after the shutdown begins
	}{
		{"drain outlasts the timeout", 0, 5 * time.Second},
		{"drain ends first", 2 * time.Second, 2 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				var cancelled time.Time
				var finished bool
				w := backi.Loop("writer", func(ctx context.Context) error {
					<-ctx.Done()
					cancelled = time.Now()
					time.Sleep(4 * time.Second) // the in-flight write finishing
					finished = true
					return nil
				})
				h := quietHost(backi.WithShutdownTimeout(10 * time.Second))
				h.Add(draining{c.drainFor}, w)
				start := time.Now()
				time.AfterFunc(time.Second, cancel)
				err := h.Run(ctx)
				begun := start.Add(time.Second)
				if got := cancelled.Sub(begun); got != c.cancelAt {
					t.Fatalf("the worker was cancelled %v into the shutdown, want %v", got, c.cancelAt)
				}
				if !finished {
					t.Fatal("the worker's in-flight iteration did not finish")
				}
				if c.drainFor > 0 {
					if err != nil {
						t.Fatalf("Run = %v, want nil", err)
					}
					return
				}
				// The drain ends with the timeout: its error or the
				// ShutdownError, whichever the host sees first, names it.
				if err == nil || !strings.Contains(err.Error(), "draining") || strings.Contains(err.Error(), "writer") {
					t.Fatalf("Run = %v, want the drain's timeout, naming it and not the writer", err)
				}
				if d := time.Since(begun); d != 10*time.Second {
					t.Fatalf("Run returned %v into the shutdown, want at the 10s timeout", d)
				}
			})
		})
	}
}

// hiding is a Service that runs another and hides its Shutdown method, so
// that the host cancels it instead of draining it.
type hiding struct {
	backi.Service
	ended chan time.Time
}

func (s hiding) Run(ctx context.Context) error {
	defer func() { s.ended <- time.Now() }()
	return s.Service.Run(ctx)
}

// TestHTTPServerShutsDownWithinTheHostsTimeout uses real time and a real
// socket: an HTTP server whose host cancels it, with a request that never
// ends, closes its connections at the host's 1 s deadline, not 15 s later.
func TestHTTPServerShutsDownWithinTheHostsTimeout(t *testing.T) {
	addr := freeAddr(t)
	inRequest := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		inRequest <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})}
	svc := hiding{backi.HTTPServer(srv), make(chan time.Time, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	h := quietHost(backi.WithShutdownTimeout(time.Second))
	h.Add(svc)
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	awaitServing(t, addr)
	client := make(chan struct{})
	go func() {
		defer close(client)
		if resp, err := http.Get("http://" + addr + "/slow"); err == nil {
			resp.Body.Close()
		}
	}()
	<-inRequest
	cancel()
	stopped := time.Now()
	<-done // nil or a ShutdownError: the server ends at the host's deadline
	select {
	case ended := <-svc.ended:
		if d := ended.Sub(stopped); d < 900*time.Millisecond {
			t.Fatalf("the server stopped %v after the host began to stop, before the 1s deadline", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the server still runs 3s after the host's 1s shutdown timeout")
	}
	<-client
	http.DefaultClient.CloseIdleConnections()
}

// panickingDrain is a Service whose Shutdown panics.
type panickingDrain struct{ draining }

func (panickingDrain) Name() string                       { return "panicking drain" }
func (panickingDrain) Shutdown(ctx context.Context) error { panic("drain") }

func TestShutdownPanicIsReportedNotFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		h := quietHost()
		h.Add(panickingDrain{}, blocking("w"))
		var pe *backi.PanicError
		if err := h.Run(ctx); !errors.As(err, &pe) || pe.Value != "drain" || !strings.Contains(err.Error(), `service "panicking drain": shutdown`) {
			t.Fatalf("Run = %v, want the Shutdown's PanicError", err)
		}
	})
}

// An optional service that fails while the host stops is logged; the host's
// Run does not return its error.
func TestOptionalServiceFailingDuringShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
		h.Add(backi.Optional(backi.Loop("warmer", func(ctx context.Context) error {
			<-ctx.Done()
			return backi.Stop(errors.New("cache unreachable"))
		})))
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil: the failing service is optional", err)
		}
	})
}
