package backifx

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"

	"github.com/backi-go/backi"
	"go.uber.org/fx"
)

// ServiceGroup is the name of the fx value group of backi.Service values
// that Module runs. AsWorker and AsService put a constructor's result in it;
// a constructor that returns an fx.Out struct joins it with a field of type
// backi.Service or *backi.Worker tagged `group:"backi.services"`.
const ServiceGroup = "backi.services"

// DefaultShutdownTimeout is the host's shutdown timeout under Module when no
// backi.WithShutdownTimeout option is given: two thirds of fx.DefaultTimeout,
// so that the host's ordered shutdown, and its report of what outlived it,
// end within fx's default stop timeout and leave time to the stop hooks
// that run after the host's.
const DefaultShutdownTimeout = fx.DefaultTimeout * 2 / 3

// HostOptions are host options built from other values of the fx graph,
// such as a logger another module provides. Provide one HostOptions value
// (fx refuses a second) and Module applies its options after its own
// arguments, so that they win where both set the same thing:
//
//	fx.Provide(func(l *slog.Logger) backifx.HostOptions {
//		return backifx.HostOptions{backi.WithLogger(l)}
//	})
type HostOptions []backi.HostOption

// AsWorker annotates constructor, a function that returns a *backi.Worker,
// or a *backi.Worker and an error, so that fx.Provide puts the worker in the
// group of services Module runs:
//
//	fx.Provide(backifx.AsWorker(NewOutbox))
//
// constructor may take any parameters fx can supply, fx.In structs
// included. The worker is provided only to the group: to reach it from
// elsewhere (to Wake it, say), provide it as a type of your own and pass
// AsWorker a function from that type to the *backi.Worker. A constructor of
// another shape is reported by fx.New, with an error that names AsWorker.
// An error the constructor returns fails fx.New, as any constructor's does.
func AsWorker(constructor any) any {
	return annotate("AsWorker", constructor, func(t reflect.Type) error {
		if t != workerType {
			return fmt.Errorf("returns %v, not *backi.Worker (use AsService for other services)", t)
		}
		return nil
	})
}

// AsService annotates constructor, a function that returns a value that
// implements backi.Service, or such a value and an error, so that fx.Provide
// puts the service in the group Module runs. HTTP servers join as
// backi.HTTPServer services:
//
//	fx.Provide(backifx.AsService(func(h *backi.Host) backi.Service {
//		return backi.HTTPServer(&http.Server{Addr: ":8080", Handler: backihttp.Status(h)})
//	}))
//
// A constructor of another shape is reported by fx.New, with an error that
// names AsService. A service wrapped in backi.Optional ends alone without
// stopping the host, as it does in any host.
func AsService(constructor any) any {
	return annotate("AsService", constructor, func(t reflect.Type) error {
		if !t.Implements(serviceType) {
			return fmt.Errorf("returns %v, which does not implement backi.Service", t)
		}
		return nil
	})
}

var (
	workerType  = reflect.TypeFor[*backi.Worker]()
	serviceType = reflect.TypeFor[backi.Service]()
	errorType   = reflect.TypeFor[error]()
)

// annotate returns constructor annotated into the service group, or, when
// its shape is wrong, a constructor in the group that fails with an error
// naming fn, so that fx.New reports it.
func annotate(fn string, constructor any, check func(reflect.Type) error) any {
	if err := shape(constructor, check); err != nil {
		err = fmt.Errorf("backifx: %s(%s): %w", fn, funcName(constructor), err)
		return fx.Annotate(func() (backi.Service, error) { return nil, err }, fx.ResultTags(groupTag))
	}
	return fx.Annotate(constructor, fx.ResultTags(groupTag), fx.As(new(backi.Service)))
}

// funcName names constructor in an error: the function's name, or the
// type of what is not a function.
func funcName(constructor any) string {
	v := reflect.ValueOf(constructor)
	if v.Kind() != reflect.Func || v.IsNil() {
		return fmt.Sprintf("%T", constructor)
	}
	if f := runtime.FuncForPC(v.Pointer()); f != nil {
		return f.Name()
	}
	return v.Type().String()
}

const groupTag = `group:"` + ServiceGroup + `"`

// shape checks that constructor is a function that returns one value that
// check accepts, and optionally an error.
func shape(constructor any, check func(reflect.Type) error) error {
	if constructor == nil {
		return errors.New("constructor is nil")
	}
	t := reflect.TypeOf(constructor)
	if t.Kind() != reflect.Func {
		return fmt.Errorf("constructor is a %v, not a function (an fx.Annotate result cannot be annotated again: "+
			"give your own fx.Annotate fx.ResultTags(`group:%q`) and fx.As(new(backi.Service)))", t, ServiceGroup)
	}
	if n := t.NumOut(); n == 0 || n > 2 || (n == 2 && t.Out(1) != errorType) {
		return fmt.Errorf("constructor %v must return one value, or one value and an error", t)
	}
	return check(t.Out(0))
}

// hostParams is what the host is built from: no service, so that a service's
// constructor may take the *backi.Host.
type hostParams struct {
	fx.In
	Options HostOptions `optional:"true"`
}

// bindParams is what binds the host to the app's lifecycle.
type bindParams struct {
	fx.In
	Lifecycle  fx.Lifecycle
	Shutdowner fx.Shutdowner
	Host       *backi.Host
	Services   []backi.Service `group:"backi.services"`
	// Workers are the group's values of type *backi.Worker: fx keeps a
	// group for each type, and an fx.Out field of the worker's own type
	// joins that one.
	Workers []*backi.Worker `group:"backi.services"`
}

// Module returns an fx option that provides one *backi.Host, runs on it
// every service of the group ServiceGroup (see AsWorker and AsService), and
// binds it to the app's lifecycle. Include it once in an app; fx refuses a
// second *backi.Host.
//
// Host options are backi's own (backi.WithShutdownTimeout,
// backi.WithLogger, backi.WithStuckAfter, backi.WithObserver), so that a
// host is configured the same with or without fx, and an invalid one fails
// the start with backi's error naming it. Those known when the app is
// assembled are opts, kept beside the module in main and applied in order.
// Those built from other values of the graph, such as a logger another
// module provides, come as one HostOptions value, applied after opts: one
// value rather than a value group, because fx shuffles a group and the
// order of options decides which of two wins. The shutdown timeout
// defaults to DefaultShutdownTimeout rather than backi's, and the host
// never installs signal handlers: fx's App.Run handles SIGINT and SIGTERM
// and stops the app, which stops the host, so a backi.WithSignals option
// has no effect.
//
// The host is built without its services, which are added when the app
// starts: an HTTP server's constructor may therefore take the *backi.Host,
// for backihttp's handlers, without a dependency cycle. Don't call the
// host's Add or Run yourself. fx hands a value group over in random order,
// so the services are added in the order of their names, and
// Host.Workers lists the workers in that order, from the first start on.
//
// On start, the host runs on a goroutine of its own, and the start hook
// returns once the host runs every service, or fails with the host's
// error when the host cannot start: an invalid option or service (named by
// the error), no service at all, a service that fails before the hook sees
// the host running (an HTTP server whose address is taken, most of the
// time: one that fails later shuts the app down, as below), or a start
// deadline that passes first (the hook then returns shortly before it, as
// the stop hook does, and the cancelled host stops on its own goroutine;
// when a service that failed at once left the host still stopping the
// others then, the error names the workers that failed).
// When the host stops on its own after the app started (a service's error
// stops it, as does a worker's escalation to backi.StopHost; see
// backi.Host.Run), it shuts the app down through fx.Shutdowner with exit
// code 1, or 0 when every service ended without an error, and the app's
// Stop returns the host's error.
//
// On stop, the host is cancelled and stops in its order (HTTP servers drain,
// then workers finish their iterations), and the stop hook returns what
// Host.Run returned, a *backi.ShutdownError among it for services that
// outlived the host's shutdown timeout. When the stop context's deadline
// (fx's stop timeout) would pass first, the hook returns shortly before it,
// so that fx reports its error rather than only context.DeadlineExceeded.
// That error holds a *backi.ShutdownError naming the workers still running.
// backifx cannot see the other services end: when no worker runs, one of
// them still does, and the *backi.ShutdownError names them; otherwise the
// error names them after it, as services that may run too. The host then
// goes on stopping on its own goroutine until its own timeout. Keep
// backi.WithShutdownTimeout below fx.StopTimeout to get the host's own
// report, which names exactly what outlived it.
func Module(opts ...backi.HostOption) fx.Option {
	opts = slices.Clone(opts)
	return fx.Module("backifx",
		fx.Provide(func(p hostParams) *backi.Host {
			all := make([]backi.HostOption, 0, len(opts)+len(p.Options)+2)
			all = append(all, backi.WithShutdownTimeout(DefaultShutdownTimeout))
			all = append(all, opts...)
			all = append(all, p.Options...)
			all = append(all, backi.WithSignals()) // last, so that it wins
			return backi.NewHost(all...)
		}),
		fx.Invoke(func(p bindParams) {
			services := slices.Clone(p.Services)
			for _, w := range p.Workers {
				services = append(services, w)
			}
			b := &binding{host: p.Host, services: services, shutdowner: p.Shutdowner}
			p.Lifecycle.Append(fx.Hook{OnStart: b.start, OnStop: b.stop})
		}),
	)
}
