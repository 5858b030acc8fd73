package backihttp_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
)

func Example() {
	page := backihttp.NewPage()
	host := backi.NewHost(backi.WithObserver(page), backi.WithStuckAfter(time.Minute),
		backi.WithLogger(slog.New(slog.DiscardHandler)))
	host.Add(backi.Loop("refresher", func(ctx context.Context) error { return backi.ErrNoWork }))

	mux := http.NewServeMux()
	mux.Handle("GET /livez", backihttp.Liveness(host, backihttp.WithFailureThreshold(10)))
	mux.Handle("GET /readyz", backihttp.Readiness(host))
	mux.Handle("GET /status", backihttp.Status(host))
	mux.Handle("GET /backi", page.Handler(host)) // open it in a browser

	// Before the host runs, it is alive but not ready.
	for _, path := range []string{"/livez", "/readyz"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Print(path, " ", rec.Code, " ", rec.Body.String())
	}
	// Output:
	// /livez 200 {"status":"ok"}
	// /readyz 503 {"status":"not ready","problems":["host is new"]}
}

func ExampleControl() {
	host := backi.NewHost(backi.WithLogger(slog.New(slog.DiscardHandler)))
	host.Add(backi.Loop("mailer", func(ctx context.Context) error { return backi.ErrNoWork }))

	mux := http.NewServeMux()
	// Behind the service's own authentication, and with a check of who may act.
	mux.Handle("/backi/control/", http.StripPrefix("/backi/control", backihttp.Control(host,
		backihttp.WithControlLogger(slog.New(slog.DiscardHandler)),
		backihttp.WithAuthorize(func(r *http.Request, worker, action string) error {
			if r.Header.Get("X-Role") != "operator" {
				return errors.New("operators only")
			}
			return nil
		}))))

	for _, role := range []string{"visitor", "operator"} {
		req := httptest.NewRequest("POST", "/backi/control/workers/mailer/pause", nil)
		req.Header.Set("X-Role", role)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(role, rec.Code, host.Workers()[0].Status().Paused)
	}
	// Output:
	// visitor 403 false
	// operator 200 true
}
