package backihttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
)

// post sends an action to the control handler as a same-origin browser
// request would, and returns the answer.
func post(t *testing.T, h http.Handler, path string, header ...string) (int, backihttp.ControlAnswer, string) {
	t.Helper()
	return do(t, h, "POST", path, append([]string{"Sec-Fetch-Site", "same-origin"}, header...)...)
}

func do(t *testing.T, h http.Handler, method, path string, header ...string) (int, backihttp.ControlAnswer, string) {
	t.Helper()
	rec := serve(h, method, path, header...)
	var ans backihttp.ControlAnswer
	raw := rec.Body.String()
	if err := json.Unmarshal([]byte(raw), &ans); err != nil {
		t.Fatalf("%s %s: %d, body %q: %v", method, path, rec.Code, raw, err)
	}
	return rec.Code, ans, raw
}

// serve serves a request with the headers given as name, value pairs.
func serve(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// controlled runs a host with one idle worker, named name, whose turns it
// counts, until the test ends.
func controlled(t *testing.T, name string, opts ...backihttp.ControlOption) (http.Handler, *backi.Worker, *int) {
	t.Helper()
	turns := new(int)
	w := backi.Loop(name, func(context.Context) error { *turns++; return backi.ErrNoWork }, backi.WithIdle(time.Hour, time.Hour))
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet))
	h.Add(w)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	synctest.Wait()
	return backihttp.Control(h, append([]backihttp.ControlOption{backihttp.WithControlLogger(quiet)}, opts...)...), w, turns
}

func TestControlPausesResumesAndRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, w, turns := controlled(t, "mailer")

		code, ans, _ := post(t, c, "/workers/mailer/pause")
		synctest.Wait()
		if code != 200 || ans.Action != "pause" || ans.Error != "" || ans.Worker == nil || !ans.Worker.Paused {
			t.Fatalf("pause: %d %+v", code, ans)
		}
		if st := w.Status(); st.State != backi.StatePaused {
			t.Fatalf("after pause: %v", st.State)
		}

		code, ans, _ = post(t, c, "/workers/mailer/run")
		synctest.Wait()
		if code != 409 || !strings.Contains(ans.Error, "paused") || *turns != 1 {
			t.Fatalf("run while paused: %d %+v after %d turns, want 409 and no turn", code, ans, *turns)
		}

		code, ans, _ = post(t, c, "/workers/mailer/resume")
		synctest.Wait()
		if code != 200 || ans.Worker.Paused || *turns != 2 {
			t.Fatalf("resume: %d %+v after %d turns, want a turn at once", code, ans, *turns)
		}

		code, ans, _ = post(t, c, "/workers/mailer/run")
		synctest.Wait()
		if code != 200 || ans.Worker == nil || ans.Worker.Paused || *turns != 3 || w.Status().State != backi.StateIdle {
			t.Fatalf("run: %d %+v after %d turns, want a third turn, then idle", code, ans, *turns)
		}
	})
}

func TestControlRefusesWhatItMust(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, w, _ := controlled(t, "mailer")
		for _, r := range []struct {
			method, path string
			header       []string
			code         int
		}{
			{"POST", "/workers/nobody/pause", nil, 404},
			{"POST", "/workers/mailer/explode", nil, 404},
			{"POST", "/elsewhere", nil, 404},
			{"GET", "/workers/mailer/pause", nil, 405},
			{"PUT", "/workers/mailer/pause", nil, 405},
			// Browsers say where a request comes from; another site is refused.
			{"POST", "/workers/mailer/pause", []string{"Sec-Fetch-Site", "cross-site"}, 403},
			{"POST", "/workers/mailer/pause", []string{"Origin", "https://evil.example"}, 403},
		} {
			code, _, raw := do(t, c, r.method, r.path, r.header...)
			if code != r.code {
				t.Errorf("%s %s %v: %d %s, want %d", r.method, r.path, r.header, code, raw, r.code)
			}
		}
		if w.Status().Paused {
			t.Fatal("a refused request paused the worker")
		}
		// Clients that are not browsers send no such headers, and pass.
		if code, _, raw := do(t, c, "POST", "/workers/mailer/pause"); code != 200 {
			t.Fatalf("a request without browser headers: %d %s", code, raw)
		}
	})
}

type asked struct{ worker, action string }

func TestControlAsksTheAuthorizer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []asked
		mode := "allow"
		c, w, _ := controlled(t, "mailer", backihttp.WithAuthorize(func(r *http.Request, worker, action string) error {
			mu.Lock()
			got = append(got, asked{worker, action})
			mu.Unlock()
			switch mode {
			case "refuse":
				return errors.New("operators only")
			case "panic":
				panic("authorizer bug")
			case "goexit":
				runtime.Goexit()
			case "bad error":
				return badError{}
			}
			return nil
		}))
		if code, _, _ := post(t, c, "/workers/mailer/pause"); code != 200 || !w.Status().Paused {
			t.Fatalf("allowed: %d", code)
		}
		for _, c2 := range []struct {
			mode, want string
			code       int
		}{
			{"refuse", "operators only", 403},
			{"panic", "the authorization check failed", 500},
			{"goexit", "the authorization check failed", 500},
			{"bad error", "PANIC", 403},
		} {
			mode = c2.mode
			code, ans, _ := post(t, c, "/workers/mailer/resume")
			if code != c2.code || !strings.Contains(ans.Error, c2.want) {
				t.Errorf("%s: %d %+v, want %d and %q", c2.mode, code, ans, c2.code, c2.want)
			}
			if !w.Status().Paused {
				t.Fatalf("%s: the refused resume was taken", c2.mode)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 5 || got[0] != (asked{"mailer", "pause"}) || got[4] != (asked{"mailer", "resume"}) {
			t.Fatalf("the authorizer was asked %v", got)
		}
	})
}

type badError struct{}

func (badError) Error() string { panic("Error method bug") }

// A worker's name is text wherever it goes, and every action is logged with
// the worker, the action and the remote address.
func TestControlWritesHostileNamesAsTextAndLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		name := `<script>alert("x")</script>/"`
		var buf strings.Builder
		var mu sync.Mutex
		log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
		c, w, _ := controlled(t, name, backihttp.WithControlLogger(log))
		code, ans, raw := post(t, c, "/workers/"+url.PathEscape(name)+"/pause")
		if code != 200 || ans.Worker == nil || ans.Worker.Name != name || !w.Status().Paused {
			t.Fatalf("pause of %q: %d %s", name, code, raw)
		}
		if strings.Contains(raw, "<script>") {
			t.Fatalf("the answer carries markup unescaped: %s", raw)
		}
		mu.Lock()
		defer mu.Unlock()
		var rec map[string]any
		if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
			t.Fatalf("log %q: %v", buf.String(), err)
		}
		if rec["level"] != "INFO" || rec["worker"] != name || rec["action"] != "pause" || rec["remote"] != "192.0.2.1:1234" {
			t.Fatalf("log record %v", rec)
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A cross-origin request is refused as every refusal is: logged with the
// worker, the action and the remote address, and answered with a
// ControlAnswer in JSON.
func TestControlLogsCrossOriginRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf strings.Builder
		var mu sync.Mutex
		log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
		c, w, _ := controlled(t, "mailer", backihttp.WithControlLogger(log))
		for _, header := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "https://evil.example"},
		} {
			rec := serve(c, "POST", "/workers/mailer/pause", header...)
			var ans backihttp.ControlAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &ans); rec.Code != 403 || err != nil || ans.Error == "" || ans.Action != "pause" {
				t.Errorf("%v: %d %q (%v), want 403 and a ControlAnswer saying why", header, rec.Code, rec.Body.String(), err)
			}
		}
		if w.Status().Paused {
			t.Fatal("a cross-origin request paused the worker")
		}
		mu.Lock()
		defer mu.Unlock()
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d log records for 3 refusals: %q", len(lines), buf.String())
		}
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			if rec["worker"] != "mailer" || rec["action"] != "pause" || rec["remote"] != "192.0.2.1:1234" || rec["code"] != 403.0 {
				t.Errorf("log record %v", rec)
			}
		}
	})
}

// A refused request learns nothing of the worker: its answer carries the
// worker's status (its last error, its term) only when the action passed
// every check, so that a caller the authorize function refuses, or one that
// sends a GET, which is refused before authorize is asked, cannot read it.
func TestControlTellsRefusedCallersNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := controlled(t, "mailer", backihttp.WithAuthorize(func(*http.Request, string, string) error {
			return errors.New("operators only")
		}))
		for _, r := range []struct {
			method, path string
			header       []string
		}{
			{"GET", "/workers/mailer/pause", nil},
			{"HEAD", "/workers/mailer/pause", nil},
			{"OPTIONS", "/workers/mailer/pause", nil},
			{"POST", "/workers/mailer/status", nil},
			{"POST", "/workers/mailer/pause", nil},
			{"POST", "/workers/mailer/pause", []string{"Sec-Fetch-Site", "cross-site"}},
		} {
			rec := serve(c, r.method, r.path, r.header...)
			if rec.Code == 200 || strings.Contains(rec.Body.String(), `"worker"`) {
				t.Errorf("%s %s %v: %d %s, want a refusal without the worker's status", r.method, r.path, r.header, rec.Code, rec.Body.String())
			}
		}
	})
}
