package backihttp_test

// Hostile values and requests that the handlers must survive. A case whose
// failure would crash the test binary runs in a child process (see childtest.Run).

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/internal/childtest"
)

// bomb is an error whose Error method panics with the bomb itself: fmt
// contains a panic in an Error method only once, so fmt.Sprint(bomb{})
// panics, and so does printing the panic's value.
type bomb struct{}

func (b bomb) Error() string { panic(b) }

// An authorize function that returns or panics with a value whose text
// panics refuses the action; it does not crash the process.
func TestControlSurvivesAnAuthorizerWithAPanickingValue(t *testing.T) {
	for _, mode := range []string{"returns", "panics"} {
		t.Run(mode, func(t *testing.T) {
			childtest.Run(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, w, _ := controlled(t, "mailer", backihttp.WithAuthorize(func(*http.Request, string, string) error {
						if mode == "panics" {
							panic(bomb{})
						}
						return bomb{}
					}))
					code, ans, _ := post(t, c, "/workers/mailer/pause")
					if code != 403 && code != 500 || ans.Error == "" || w.Status().Paused {
						t.Fatalf("%d %+v, paused %v: want the pause refused", code, ans, w.Status().Paused)
					}
				})
			})
		})
	}
}

// A worker whose last error's text panics leaves the status, the page, the
// liveness check and the controls working, for it and for every other
// worker: the error shows as a description of its type.
func TestAPanickingLastErrorBreaksNoHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		page := backihttp.NewPage()
		h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet), backi.WithObserver(page))
		h.Add(
			backi.Loop("bomb", func(context.Context) error { return bomb{} }, backi.WithBackoff(backi.ConstantBackoff(time.Hour))),
			backi.Loop("fine", func(context.Context) error { return backi.ErrNoWork }),
		)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- h.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		synctest.Wait()
		for _, c := range []struct {
			name, method, path string
			h                  http.Handler
		}{
			{"status", "GET", "/", backihttp.Status(h)},
			{"page", "GET", "/?json", page.Handler(h)},
			{"liveness", "GET", "/", backihttp.Liveness(h, backihttp.WithFailureThreshold(1))},
			{"control", "POST", "/workers/bomb/pause", backihttp.Control(h, backihttp.WithControlLogger(quiet))},
		} {
			rec := httptest.NewRecorder()
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("%s panicked: %T", c.name, p)
					}
				}()
				c.h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
			}()
			if body := rec.Body.String(); !strings.Contains(body, "bomb (its text panics)") {
				t.Errorf("%s: %d %q, want the error described by its type", c.name, rec.Code, body)
			}
		}
	})
}
