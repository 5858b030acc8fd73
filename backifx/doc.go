// Package backifx runs backi workers and HTTP servers in an uber-go/fx
// application, on one backi.Host bound to the app's lifecycle.
//
// Constructors put services in a value group: [AsWorker] for a
// *backi.Worker, [AsService] for any backi.Service, such as the one
// backi.HTTPServer returns. [Module] builds the host from the group and
// provides it as a *backi.Host, for backihttp's handlers and anything else
// that reads Workers or State:
//
//	fx.New(
//		backifx.Module(backi.WithShutdownTimeout(10*time.Second)),
//		fx.Provide(
//			NewDB,
//			backifx.AsWorker(NewOutbox), // func(*sql.DB) *backi.Worker
//			backifx.AsService(func(h *backi.Host) backi.Service {
//				mux := http.NewServeMux()
//				mux.Handle("GET /readyz", backihttp.Readiness(h))
//				return backi.HTTPServer(&http.Server{Addr: ":8080", Handler: mux})
//			}),
//		),
//	).Run()
//
// The host starts when the app starts, once every hook registered before
// it, such as those of the services' own dependencies, has run; its start
// hook returns once every service has started, and fails with the host's
// error when the host cannot start. The host stops when the app stops, in
// its own order, before the hooks of what its services depend on: fx's
// App.Run stops the app on SIGINT and SIGTERM, and the host installs no
// signal handler of its own. A host that stops on its own, when a service
// fails, shuts the app down with exit code 1. Module's documentation says
// what each hook returns, and how the host's shutdown timeout and fx's
// stop timeout meet.
//
// The host does not depend on its services, which are added when the app
// starts, so a service's constructor may take the *backi.Host without a
// dependency cycle.
//
// Module, AsWorker and AsService only build fx options and annotations:
// they start nothing and may be called from any goroutine. The host they
// provide is safe for concurrent use, as backi documents.
package backifx
