package backifx_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backifx"
	"go.uber.org/fx"
)

// Store stands for a dependency of a worker, such as a database.
type Store struct{ pending []string }

// A worker's constructor takes what the worker needs from the graph.
func ExampleAsWorker() {
	done := make(chan struct{})
	app := fx.New(
		fx.NopLogger,
		backifx.Module(backi.WithLogger(slog.New(slog.DiscardHandler))),
		fx.Supply(&Store{pending: []string{"a", "b"}}),
		fx.Provide(backifx.AsWorker(func(s *Store) *backi.Worker {
			return backi.Loop("drain", func(ctx context.Context) error {
				if len(s.pending) == 0 {
					close(done)
					return backi.Stop(nil) // this worker's job is done
				}
				fmt.Println("sent", s.pending[0])
				s.pending = s.pending[1:]
				return nil
			})
		})),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	<-done
	fmt.Println(app.Stop(context.Background()))
	// Output:
	// sent a
	// sent b
	// <nil>
}

// Report is a worker the app reaches by its own type, to Wake it.
type Report struct{ *backi.Worker }

// An HTTP server joins the host as a backi.HTTPServer service. To reach a
// worker from a handler, provide it as a type of your own, and put it in
// the group with AsService.
func ExampleAsService() {
	ran := make(chan struct{})
	var mux *http.ServeMux
	app := fx.New(
		fx.NopLogger,
		backifx.Module(backi.WithLogger(slog.New(slog.DiscardHandler))),
		fx.Provide(
			func() *Report {
				return &Report{backi.Loop("report", func(ctx context.Context) error {
					ran <- struct{}{}      // the report is written
					return backi.ErrNoWork // idle until woken
				}, backi.WithIdle(time.Hour, time.Hour))}
			},
			backifx.AsService(func(r *Report) *backi.Worker { return r.Worker }),
			func(r *Report) *http.ServeMux {
				mux := http.NewServeMux()
				mux.HandleFunc("POST /report", func(w http.ResponseWriter, _ *http.Request) {
					r.Wake()
					w.WriteHeader(http.StatusAccepted)
				})
				return mux
			},
			backifx.AsService(func(mux *http.ServeMux) backi.Service {
				return backi.HTTPServer(&http.Server{Addr: "127.0.0.1:0", Handler: mux, ReadHeaderTimeout: 5 * time.Second})
			}),
		),
		fx.Populate(&mux),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	<-ran // the run at start
	fmt.Println("report written")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/report", nil)) // as a client's POST would
	fmt.Println(rec.Code)
	<-ran
	fmt.Println("report written")
	fmt.Println(app.Stop(context.Background()))
	// Output:
	// report written
	// 202
	// report written
	// <nil>
}

// A constructor that returns an fx.Out struct puts several services in the
// group, through fields tagged with the group's name.
type pipeline struct {
	fx.Out
	Fetch backi.Service `group:"backi.services"`
	Parse backi.Service `group:"backi.services"`
}

func ExampleServiceGroup() {
	var host *backi.Host
	app := fx.New(
		fx.NopLogger,
		backifx.Module(backi.WithLogger(slog.New(slog.DiscardHandler))),
		fx.Provide(func() pipeline {
			idle := func(context.Context) error { return backi.ErrNoWork }
			return pipeline{Fetch: backi.Loop("fetch", idle), Parse: backi.Loop("parse", idle)}
		}),
		fx.Populate(&host),
	)
	if err := app.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range host.Workers() { // in the order of their names
		fmt.Println(w.Name())
	}
	fmt.Println(app.Stop(context.Background()))
	// Output:
	// fetch
	// parse
	// <nil>
}
