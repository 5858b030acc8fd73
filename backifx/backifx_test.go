package backifx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backifx"
	"github.com/backi-go/backi/backihttp"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

var errBoom = errors.New("boom")

// worker returns a constructor of a worker named name that calls fn,
// for AsWorker.
func worker(name string, fn func(context.Context) error, opts ...backi.Option) func() *backi.Worker {
	return func() *backi.Worker { return backi.Loop(name, fn, opts...) }
}

// sleeper is an iteration that lasts d, or until ctx is done.
func sleeper(d time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func TestWorkerRunsUntilTheAppStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newLogs()
		var host *backi.Host
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(log)),
			fx.Provide(backifx.AsWorker(worker("tick", sleeper(100*time.Millisecond)))),
			fx.Populate(&host),
		)
		app.RequireStart()
		if st := host.State(); st != backi.HostRunning {
			t.Fatalf("after the start hook the host is %v, want running", st)
		}
		time.Sleep(time.Second + 50*time.Millisecond)
		ws := host.Workers()
		if len(ws) != 1 || ws[0].Name() != "tick" {
			t.Fatalf("Workers() = %v, want the one worker provided", ws)
		}
		if st := ws[0].Status(); st.Successes != 10 || st.State != backi.StateRunning {
			t.Fatalf("after 1.05 s of 100 ms turns: %d successes, %v; want 10, running", st.Successes, st.State)
		}

		begun := time.Now()
		app.RequireStop()
		if took := time.Since(begun); took != 0 {
			t.Fatalf("stopping took %v; the iteration in flight ends at once on cancellation", took)
		}
		if st := ws[0].Status(); st.State != backi.StateStopped || st.Failures != 0 {
			t.Fatalf("after the app stopped the worker is %v with %d failures, want stopped and none", st.State, st.Failures)
		}
		if st := host.State(); st != backi.HostStopped {
			t.Fatalf("after the stop hook the host is %v, want stopped", st)
		}
		stopping := rec.find("host stopping")
		if len(stopping) != 1 || !strings.Contains(stopping[0]["reason"], "fx app is stopping") {
			t.Fatalf("the host's stop was logged as %v, want the app's stop as its reason", stopping)
		}
	})
}

func TestHostInstallsNoSignalHandler(t *testing.T) {
	// Take SIGTERM first, so that the signal does not end the test binary;
	// a host with a handler of its own would stop on it too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var host *backi.Host
	app := fxtest.New(t,
		backifx.Module(backi.WithLogger(quiet), backi.WithSignals(syscall.SIGTERM)),
		fx.Provide(backifx.AsWorker(worker("w", sleeper(time.Hour)))),
		fx.Populate(&host),
	)
	app.RequireStart()
	defer app.RequireStop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-sigs
	for range 20 {
		if st := host.State(); st != backi.HostRunning {
			t.Fatalf("after SIGTERM the host is %v: it handles signals itself, where fx should", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPanickingIterationIsContained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var host *backi.Host
		var sd shutdowns
		app := fxtest.New(t,
			sd.option(),
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsWorker(worker("panicky", func(context.Context) error { panic("bad turn") }))),
			fx.Populate(&host),
		)
		app.RequireStart()
		time.Sleep(time.Minute)
		st := host.Workers()[0].Status()
		var pe *backi.PanicError
		if st.Failures < 3 || !errors.As(st.LastError, &pe) || pe.Value != "bad turn" {
			t.Fatalf("after a minute of panics: %d failures, last %v; want several, each a *backi.PanicError", st.Failures, st.LastError)
		}
		// backi's default policy: a panic is a failure, retried after a
		// backoff wait, and neither the host nor the app stops.
		if hs := host.State(); hs != backi.HostRunning || sd.n.Load() != 0 {
			t.Fatalf("the host is %v and the app was shut down %d times; want running, and none", hs, sd.n.Load())
		}
		app.RequireStop()
	})
}

func TestPanicsEscalatedToTheHostShutTheAppDown(t *testing.T) {
	var host *backi.Host
	app := fxtest.New(t,
		backifx.Module(backi.WithLogger(quiet)),
		fx.Provide(backifx.AsWorker(worker("panicky", func(context.Context) error { panic("bad turn") },
			backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)),
			backi.WithEscalation(3, time.Minute, backi.StopHost)))),
		fx.Populate(&host),
	)
	wait := app.Wait()
	app.RequireStart()
	if sig := shutdownSignal(t, wait); sig.ExitCode != 1 {
		t.Fatalf("the app was shut down with exit code %d, want 1", sig.ExitCode)
	}
	err := app.Stop(t.Context())
	var esc *backi.EscalationError
	var pe *backi.PanicError
	if !errors.As(err, &esc) || !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "backifx: host: ") {
		t.Fatalf("Stop = %v, want the host's *backi.EscalationError, with the panic", err)
	}
	if st := host.State(); st != backi.HostStopped {
		t.Fatalf("the host is %v, want stopped", st)
	}
}

// shutdownSignal returns the signal that shut the app down, which wait
// receives, or fails the test after ten seconds without one.
func shutdownSignal(t *testing.T, wait <-chan fx.ShutdownSignal) fx.ShutdownSignal {
	t.Helper()
	select {
	case sig := <-wait:
		return sig
	case <-time.After(10 * time.Second):
		t.Fatal("the app was not shut down")
		panic("unreachable")
	}
}

func TestHostEndingOnItsOwnShutsTheAppDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  error // what the worker stops with
		code int
	}{
		{"with an error", errBoom, 1},
		{"without error", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trigger := make(chan struct{})
			app := fxtest.New(t,
				backifx.Module(backi.WithLogger(quiet)),
				fx.Provide(backifx.AsWorker(worker("once", func(ctx context.Context) error {
					<-trigger
					return backi.Stop(tc.end)
				}))),
			)
			wait := app.Wait()
			app.RequireStart()
			close(trigger)
			if sig := shutdownSignal(t, wait); sig.ExitCode != tc.code {
				t.Fatalf("the app was shut down with exit code %d, want %d", sig.ExitCode, tc.code)
			}
			err := app.Stop(t.Context())
			if tc.end == nil && err != nil {
				t.Fatalf("Stop = %v, want nil: the only service ended without an error", err)
			}
			if tc.end != nil && (!errors.Is(err, errBoom) || !strings.Contains(err.Error(), `service "once"`)) {
				t.Fatalf("Stop = %v, want the worker's error, naming it", err)
			}
		})
	}
}

func TestStopDeadlineNamesTheWorkerStillRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		var host *backi.Host
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet), backi.WithShutdownTimeout(time.Minute)),
			fx.Provide(
				backifx.AsWorker(worker("stubborn", func(context.Context) error {
					close(started)
					<-release // deaf to cancellation
					return nil
				})),
				backifx.AsWorker(worker("polite", sleeper(time.Hour))),
			),
			fx.Populate(&host),
			fx.StopTimeout(time.Second),
		)
		app.RequireStart()
		<-started

		ctx, cancel := context.WithTimeout(t.Context(), app.StopTimeout())
		defer cancel()
		begun := time.Now()
		err := app.Stop(ctx)
		took := time.Since(begun)
		var se *backi.ShutdownError
		if !errors.As(err, &se) || !slices.Equal(se.Running, []string{"stubborn"}) ||
			!strings.HasPrefix(err.Error(), "backifx: ") || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop = %v, want a *backi.ShutdownError naming only the stubborn worker, not fx's deadline error", err)
		}
		if took >= time.Second || se.Timeout != took {
			t.Fatalf("Stop took %v and says %v; want under the 1 s stop timeout, and the time it waited", took, se.Timeout)
		}

		// The host goes on stopping: let the iteration end, and the host
		// with it, before the test does.
		close(release)
		synctest.Wait()
		if st := host.State(); st != backi.HostStopped {
			t.Fatalf("once the iteration returned, the host is %v, want stopped", st)
		}
	})
}

func TestHostShutdownTimeoutWithinTheStopTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet), backi.WithShutdownTimeout(time.Second)),
			fx.Provide(backifx.AsWorker(worker("stubborn", func(context.Context) error {
				close(started)
				<-release
				return nil
			}))),
			fx.StopTimeout(time.Minute),
		)
		app.RequireStart()
		<-started
		begun := time.Now()
		err := app.Stop(t.Context())
		var se *backi.ShutdownError
		if !errors.As(err, &se) || se.Timeout != time.Second || !slices.Equal(se.Running, []string{"stubborn"}) {
			t.Fatalf("Stop = %v, want the host's own *backi.ShutdownError after 1 s", err)
		}
		if took := time.Since(begun); took != time.Second {
			t.Fatalf("Stop took %v, want the host's 1 s", took)
		}
		close(release)
	})
}

func TestDefaultShutdownTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{})
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsWorker(worker("stubborn", func(context.Context) error {
				close(started)
				<-release
				return nil
			}))),
		)
		app.RequireStart()
		<-started
		ctx, cancel := context.WithTimeout(t.Context(), fx.DefaultTimeout)
		defer cancel()
		err := app.Stop(ctx)
		var se *backi.ShutdownError
		if !errors.As(err, &se) || se.Timeout != backifx.DefaultShutdownTimeout {
			t.Fatalf("Stop = %v, want the host's own *backi.ShutdownError after %v, within fx's default stop timeout",
				err, backifx.DefaultShutdownTimeout)
		}
		close(release)
	})
}

func TestInvalidOptionFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var host *backi.Host
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(
				backifx.AsWorker(worker("bad", sleeper(time.Second), backi.WithTimeout(-time.Second))),
				backifx.AsWorker(worker("good", sleeper(time.Second))),
			),
			fx.Populate(&host),
		)
		err := app.Start(t.Context())
		if err == nil || !strings.HasPrefix(err.Error(), "backifx: the host did not start: ") ||
			!strings.Contains(err.Error(), `worker "bad"`) || !strings.Contains(err.Error(), "WithTimeout(-1s)") {
			t.Fatalf("Start = %v, want an error naming the worker and its option", err)
		}
		for _, w := range host.Workers() {
			if st := w.Status(); st.Iterations != 0 {
				t.Fatalf("%s ran %d iterations: a host with an invalid service starts none", st.Name, st.Iterations)
			}
		}
	})
}

func TestInvalidHostOptionFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet), backi.WithShutdownTimeout(0)),
			fx.Provide(backifx.AsWorker(worker("w", sleeper(time.Second)))),
		)
		err := app.Start(t.Context())
		if err == nil || !strings.HasPrefix(err.Error(), "backifx: ") || !strings.Contains(err.Error(), "WithShutdownTimeout(0s)") {
			t.Fatalf("Start = %v, want an error naming the host option", err)
		}
	})
}

func TestServiceFailingAtOnceFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(
				backifx.AsWorker(worker("doomed", func(context.Context) error { return backi.Stop(errBoom) })),
				backifx.AsWorker(worker("other", sleeper(time.Hour))),
			),
		)
		err := app.Start(t.Context())
		if !errors.Is(err, errBoom) || !strings.Contains(err.Error(), `service "doomed"`) {
			t.Fatalf("Start = %v, want the failing service's error, naming it", err)
		}
	})
}

func TestNoServicesFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := fxtest.New(t, backifx.Module(backi.WithLogger(quiet)))
		if err := app.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "no services") {
			t.Fatalf("Start = %v, want an error saying the host has no services", err)
		}
	})
}

func TestConstructorErrorFailsTheApp(t *testing.T) {
	app := fx.New(fx.NopLogger,
		backifx.Module(backi.WithLogger(quiet)),
		fx.Provide(backifx.AsWorker(func() (*backi.Worker, error) { return nil, errBoom })),
	)
	if err := app.Err(); !errors.Is(err, errBoom) {
		t.Fatalf("fx.New: %v, want the constructor's error", err)
	}
	if err := app.Start(t.Context()); !errors.Is(err, errBoom) {
		t.Fatalf("Start = %v, want the constructor's error", err)
	}
}

func newService() backi.Service { return nil }

func TestConstructorsOfTheWrongShape(t *testing.T) {
	for _, tc := range []struct {
		name        string
		constructor any
		want        string
	}{
		{"AsWorker of a service", backifx.AsWorker(newService), "backifx: AsWorker(github.com/backi-go/backi/backifx_test.newService): returns backi.Service, not *backi.Worker"},
		{"AsWorker of nil", backifx.AsWorker(nil), "backifx: AsWorker(<nil>): constructor is nil"},
		{"AsWorker of a worker", backifx.AsWorker(backi.Loop("w", sleeper(time.Second))), "backifx: AsWorker(*backi.Worker): constructor is a *backi.Worker, not a function"},
		{"AsWorker of an annotation", backifx.AsWorker(fx.Annotate(worker("w", sleeper(time.Second)), fx.ParamTags())), "not a function"},
		{"AsService of a string", backifx.AsService(func() string { return "" }), "AsService(github.com/backi-go/backi/backifx_test.TestConstructorsOfTheWrongShape.func1): returns string, which does not implement backi.Service"},
		{"AsService with two results", backifx.AsService(func() (backi.Service, int) { return nil, 0 }), "constructor func() (backi.Service, int) must return one value"},
		{"AsService of no result", backifx.AsService(func() {}), "must return one value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := fx.New(fx.NopLogger, backifx.Module(), fx.Provide(tc.constructor))
			if err := app.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("fx.New: %v, want %q", err, tc.want)
			}
		})
	}
}

// badName is a service whose Name method panics, calls runtime.Goexit, or
// blocks until unblock is closed.
type badName struct {
	panics  bool
	goexits bool
	unblock chan struct{}
}

func (s *badName) Name() string {
	if s.panics {
		panic("no name")
	}
	if s.goexits {
		runtime.Goexit()
	}
	<-s.unblock
	return "late"
}

func (s *badName) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func TestNameThatPanicsFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(
				backifx.AsService(func() backi.Service { return &badName{panics: true} }),
				backifx.AsWorker(worker("w", sleeper(time.Hour))),
			),
		)
		if err := app.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "Name: ") || !strings.Contains(err.Error(), "no name") {
			t.Fatalf("Start = %v, want the host's report of the panic in Name", err)
		}
	})
}

func TestNameThatCallsGoexitFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsService(func() backi.Service { return &badName{goexits: true} })),
		)
		if err := app.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "runtime.Goexit") {
			t.Fatalf("Start = %v, want an error saying runtime.Goexit was called", err)
		}
	})
}

func TestNilServiceFailsTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsService(func() backi.Service { return nil })),
		)
		if err := app.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "service #1 is nil") {
			t.Fatalf("Start = %v, want the host's report of a nil service", err)
		}
	})
}

func TestNameThatBlocksFailsTheStartInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		unblock := make(chan struct{})
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsService(func() backi.Service { return &badName{unblock: unblock} })),
			fx.StartTimeout(time.Second),
		)
		ctx, cancel := context.WithTimeout(t.Context(), app.StartTimeout())
		defer cancel()
		begun := time.Now()
		err := app.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "had not started its services") || time.Since(begun) >= time.Second {
			t.Fatalf("Start = %v after %v, want the hook's own error within the 1 s start timeout", err, time.Since(begun))
		}
		close(unblock) // the host then starts, finds itself cancelled, and stops
		synctest.Wait()
	})
}

// A service that fails at once while another is slow to stop: at the start
// deadline the host is still stopping, and the start's error names the
// worker that failed, rather than saying that the host never started its
// services.
func TestServiceFailingAtOnceBesideASlowStopFailsTheStartNamingIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet), backi.WithShutdownTimeout(time.Minute)),
			fx.Provide(
				backifx.AsWorker(worker("doomed", func(context.Context) error { return backi.Stop(errBoom) })),
				backifx.AsWorker(worker("stubborn", func(context.Context) error {
					<-release // deaf to cancellation
					return nil
				})),
			),
			fx.StartTimeout(time.Second),
		)
		ctx, cancel := context.WithTimeout(t.Context(), app.StartTimeout())
		defer cancel()
		begun := time.Now()
		err := app.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), `"doomed"`) ||
			strings.Contains(err.Error(), "had not started its services") || time.Since(begun) >= time.Second {
			t.Errorf("Start = %v after %v; want, within the 1 s start timeout, an error naming the failed worker", err, time.Since(begun))
		}
		close(release) // the host then ends its shutdown
		synctest.Wait()
	})
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestHTTPServerReadsTheHostWithoutACycle(t *testing.T) {
	addr := freeAddr(t)
	app := fxtest.New(t,
		backifx.Module(backi.WithLogger(quiet)),
		fx.Provide(
			backifx.AsWorker(worker("tick", sleeper(time.Hour))),
			backifx.AsService(func(h *backi.Host) backi.Service {
				mux := http.NewServeMux()
				mux.Handle("GET /readyz", backihttp.Readiness(h))
				mux.Handle("GET /status", backihttp.Status(h))
				return backi.HTTPServer(&http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: time.Second})
			}),
		),
	)
	app.RequireStart()
	defer app.RequireStop()

	var status backihttp.HostStatus
	for i := 0; ; i++ { // the server listens once its service runs
		resp, err := http.Get("http://" + addr + "/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&status)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("GET /status: %v", err)
			}
			break
		}
		if i == 100 {
			t.Fatalf("GET /status: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status.State != "running" || len(status.Workers) != 1 || status.Workers[0].Name != "tick" {
		t.Fatalf("/status = %+v, want the running host with its worker", status)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d, want 200 while the host runs", resp.StatusCode)
	}
}

func TestServicesAreAddedInTheOrderOfTheirNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"h", "c", "f", "a", "g", "b", "e", "d"}
		opts := []fx.Option{backifx.Module(backi.WithLogger(quiet))}
		for _, n := range names {
			opts = append(opts, fx.Provide(backifx.AsWorker(worker(n, sleeper(time.Hour)))))
		}
		var host *backi.Host
		app := fxtest.New(t, append(opts, fx.Populate(&host))...)
		app.RequireStart()
		var got []string
		for _, w := range host.Workers() {
			got = append(got, w.Name())
		}
		slices.Sort(names)
		if !slices.Equal(got, names) {
			t.Fatalf("Workers() = %v, want %v: fx shuffles a value group, the host should not", got, names)
		}
		app.RequireStop()
	})
}

// pair is a constructor's result that puts two services in the group.
type pair struct {
	fx.Out
	A backi.Service `group:"backi.services"`
	B backi.Service `group:"backi.services"`
}

func TestServiceGroupTakesFxOutFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var host *backi.Host
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(func() pair {
				return pair{A: backi.Loop("a", sleeper(time.Hour)), B: backi.Loop("b", sleeper(time.Hour))}
			}),
			fx.Populate(&host),
		)
		app.RequireStart()
		if n := len(host.Workers()); n != 2 {
			t.Fatalf("the host runs %d workers, want the 2 of the fx.Out struct", n)
		}
		app.RequireStop()
	})
}

// workerField is an fx.Out struct whose group field has the worker's own
// type, as a user writes it for a constructor that returns a worker.
type workerField struct {
	fx.Out
	W *backi.Worker `group:"backi.services"`
}

// A *backi.Worker put in the group under its own type runs too, rather than
// joining a group of another type that nothing reads.
func TestServiceGroupTakesWorkerFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var host *backi.Host
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(
				backifx.AsWorker(worker("a", sleeper(time.Hour))),
				func() workerField { return workerField{W: backi.Loop("b", sleeper(time.Hour))} },
			),
			fx.Populate(&host),
		)
		app.RequireStart()
		var names []string
		for _, w := range host.Workers() {
			names = append(names, w.Name())
		}
		if !slices.Equal(names, []string{"a", "b"}) {
			t.Errorf("the host runs %q, want the workers a and b", names)
		}
		app.RequireStop()
	})
}

func TestHostOptionsFromTheGraphComeAfterModules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first, firstLogs := newLogs()
		second, secondLogs := newLogs()
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(first)),
			fx.Supply(second),
			fx.Provide(func(l *slog.Logger) backifx.HostOptions {
				return backifx.HostOptions{backi.WithLogger(l)}
			}),
			fx.Provide(backifx.AsWorker(worker("w", sleeper(time.Hour)))),
		)
		app.RequireStart()
		app.RequireStop()
		if len(firstLogs.find("host started")) != 0 || len(secondLogs.find("host started")) != 1 {
			t.Fatal("the host did not log through the logger of HostOptions, given after Module's")
		}
	})
}

func TestAppStartsAgainAfterAStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var host *backi.Host
		var turns atomic.Int32
		app := fxtest.New(t,
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsWorker(worker("w", func(ctx context.Context) error {
				turns.Add(1)
				return sleeper(time.Hour)(ctx)
			}))),
			fx.Populate(&host),
		)
		for i := range 2 {
			app.RequireStart()
			time.Sleep(time.Second)
			app.RequireStop()
			if n := len(host.Workers()); n != 1 || turns.Load() != int32(i+1) {
				t.Fatalf("start %d: %d workers, %d turns in all; want 1 worker, one more turn", i+1, n, turns.Load())
			}
		}
	})
}

func TestStopDeadlineNamesADrainingServer(t *testing.T) {
	for _, withWorker := range []bool{true, false} {
		t.Run(fmt.Sprintf("with a worker %v", withWorker), func(t *testing.T) {
			testStopDeadlineWithADrainingServer(t, withWorker)
		})
	}
}

// testStopDeadlineWithADrainingServer stops an app whose HTTP server serves
// a request that outlasts the stop timeout, beside a worker or not.
func testStopDeadlineWithADrainingServer(t *testing.T, withWorker bool) {
	addr := freeAddr(t)
	inHandler, release := make(chan struct{}), make(chan struct{})
	var host *backi.Host
	services := []any{backifx.AsService(func() backi.Service {
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(inHandler)
			<-release // a request that outlasts the stop timeout
		})
		return backi.HTTPServer(&http.Server{Addr: addr, Handler: slow, ReadHeaderTimeout: time.Second})
	})}
	if withWorker {
		services = append(services, backifx.AsWorker(worker("polite", sleeper(time.Hour))))
	}
	app := fxtest.New(t,
		backifx.Module(backi.WithLogger(quiet), backi.WithShutdownTimeout(time.Minute)),
		fx.Provide(services...),
		fx.Populate(&host),
		fx.StopTimeout(300*time.Millisecond),
	)
	app.RequireStart()
	got := make(chan error, 1)
	go func() {
		for i := 0; ; i++ { // the server listens once its service runs
			resp, err := http.Get("http://" + addr + "/")
			if err == nil {
				resp.Body.Close()
			}
			if err == nil || i == 100 {
				got <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	select {
	case <-inHandler:
	case err := <-got:
		t.Fatalf("GET: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), app.StopTimeout())
	defer cancel()
	err := app.Stop(ctx)
	var se *backi.ShutdownError
	ok := errors.As(err, &se)
	switch {
	case !ok:
		t.Fatalf("Stop = %v, want a *backi.ShutdownError", err)
	case withWorker && (!slices.Equal(se.Running, []string{"polite"}) || !strings.HasSuffix(err.Error(), "may run too: http "+addr)):
		// The host drains its HTTP servers before it cancels the workers.
		t.Fatalf("Stop = %v, want it to name the worker still running, and the server as unknown", err)
	case !withWorker && (!slices.Equal(se.Running, []string{"http " + addr}) || strings.Contains(err.Error(), "may run")):
		t.Fatalf("Stop = %v, want it to name the server, the only service that can still run", err)
	}
	close(release)
	if err := <-got; err != nil {
		t.Fatalf("the request in flight failed: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); host.State() != backi.HostStopped; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the host is still %v 10s after the request ended", host.State())
		}
	}
}

// panickyShutdowner is an app's fx.Shutdowner, decorated, that panics.
type panickyShutdowner struct{}

func (panickyShutdowner) Shutdown(...fx.ShutdownOption) error { panic("no way out") }

func TestShutdownerThatPanicsIsContained(t *testing.T) {
	stderr := os.Stderr
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	os.Stderr = f
	defer func() { os.Stderr = stderr }()

	synctest.Test(t, func(t *testing.T) {
		trigger := make(chan struct{})
		var host *backi.Host
		app := fxtest.New(t,
			fx.Decorate(func(fx.Shutdowner) fx.Shutdowner { return panickyShutdowner{} }),
			backifx.Module(backi.WithLogger(quiet)),
			fx.Provide(backifx.AsWorker(worker("once", func(ctx context.Context) error {
				<-trigger
				return backi.Stop(errBoom)
			}))),
			fx.Populate(&host),
		)
		app.RequireStart()
		close(trigger)
		synctest.Wait()
		if st := host.State(); st != backi.HostStopped {
			t.Fatalf("the host is %v, want stopped", st)
		}
		if err := app.Stop(t.Context()); !errors.Is(err, errBoom) {
			t.Fatalf("Stop = %v, want the worker's error", err)
		}
	})
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "backifx: fx.Shutdowner.Shutdown(ExitCode(1)) panicked: no way out") {
		t.Fatalf("standard error says %q, want the Shutdowner's panic", out)
	}
}
