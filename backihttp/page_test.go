package backihttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/backitest"
	"github.com/backi-go/backi/internal/browsertest"
)

// servePage runs a host with a healthy worker and a failing one whose error
// is markup, and serves its page.
func servePage(t *testing.T, opts ...backihttp.PageOption) *httptest.Server {
	t.Helper()
	page := backihttp.NewPage()
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet), backi.WithObserver(page))
	n := 0
	h.Add(
		backi.Loop("ticker", func(ctx context.Context) error { time.Sleep(5 * time.Millisecond); return nil }),
		backi.Loop("broken", func(ctx context.Context) error {
			if n++; n%2 == 0 {
				panic("<b>bold</b> panic")
			}
			return errors.New(`<img src=x onerror="document.title='pwned'">`)
		}, backi.WithBackoff(backi.ConstantBackoff(10*time.Millisecond))),
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle("/", page.Handler(h, opts...))
	mux.Handle("/control/", http.StripPrefix("/control", backihttp.Control(h, backihttp.WithControlLogger(quiet))))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	time.Sleep(100 * time.Millisecond) // some history
	return srv
}

func TestPageDataCarriesStatusAndHistory(t *testing.T) {
	srv := servePage(t)
	resp, err := http.Get(srv.URL + "/?json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d backihttp.PageData
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.State != "running" || len(d.Workers) != 2 {
		t.Fatalf("page data %+v", d)
	}
	ticker, broken := d.Workers[0], d.Workers[1]
	if len(ticker.Recent) == 0 || ticker.Recent[0].Failed || ticker.Recent[0].Seconds < 0.005 {
		t.Fatalf("ticker history %+v", ticker.Recent)
	}
	if len(broken.Recent) == 0 || !broken.Recent[0].Failed || broken.LastError == "" {
		t.Fatalf("broken %+v", broken)
	}
	if len(ticker.Recent) > backihttp.HistoryLen {
		t.Fatalf("%d points kept, want at most %d", len(ticker.Recent), backihttp.HistoryLen)
	}
	fs := broken.RecentFailures
	if len(fs) != backihttp.FailuresKept || len(ticker.RecentFailures) != 0 {
		t.Fatalf("%d and %d recent failures, want %d and none", len(fs), len(ticker.RecentFailures), backihttp.FailuresKept)
	}
	for i, f := range fs {
		panicked := strings.Contains(f.Error, "panic")
		if panicked != (f.Stack != "") || panicked && !strings.Contains(f.Stack, "page_test.go") {
			t.Fatalf("failure %d: %+v: a panic carries its stack, an error none", i, f)
		}
		if i > 0 && f.At.After(fs[i-1].At) {
			t.Fatalf("failures not latest first: %+v", fs)
		}
	}
	if d.Control != "" {
		t.Fatalf("a page without controls names the control path %q", d.Control)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestPageInABrowser loads the page in headless Chromium: its script fills one
// row per worker, and the markup in an error message stays text.
func TestPageInABrowser(t *testing.T) {
	srv := servePage(t)
	dom := browsertest.DOM(t, srv.URL+"/", 3*time.Second)
	for _, want := range []string{
		`<tr data-worker="ticker">`, `<tr data-worker="broken">`,
		`&lt;img src=x onerror="document.title='pwned'"&gt;`,
		`<summary>last 5 failures</summary>`, `<summary>stack</summary><pre>`, `&lt;b&gt;bold&lt;/b&gt; panic`,
		`<rect `, `class="fail"`, `· 2 workers ·`,
	} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page lacks %s:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "pwned</title>") || strings.Contains(dom, "<img src") || strings.Contains(dom, "<b>") {
		t.Fatalf("an error message became markup:\n%s", dom)
	}
	if strings.Contains(dom, "<button") || !strings.Contains(dom, `id="actions-head" hidden`) {
		t.Fatalf("a page without controls shows buttons:\n%s", dom)
	}
}

// With PageQueues, the page shows a table of the queues, as text.
func TestPageShowsQueues(t *testing.T) {
	srv := servePage(t, backihttp.PageQueues(newMemQueues()))
	dom := browsertest.DOM(t, srv.URL+"/", 3*time.Second)
	for _, want := range []string{
		`<section id="queues">`, `<tr data-queue="mail">`,
		`<td class="num" data-field="due" data-label="Due">3</td>`, `<td class="num" data-field="dead" data-label="Dead">1</td>`,
	} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page lacks %s:\n%s", want, dom)
		}
	}
	if plain := browsertest.DOM(t, servePage(t).URL+"/", 2*time.Second); !strings.Contains(plain, `<section id="queues" hidden="">`) {
		t.Fatalf("a page without queues shows their table")
	}
}

// With PageControls, each row has a Pause and a Run now button; a paused
// worker's row says so and offers Resume.
func TestPageShowsControls(t *testing.T) {
	srv := servePage(t, backihttp.PageControls("/control"))
	req, _ := http.NewRequest("POST", srv.URL+"/control/workers/ticker/pause", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pause: %v %v", resp, err)
	}
	resp.Body.Close()
	dom := browsertest.DOM(t, srv.URL+"/", 3*time.Second)
	for _, want := range []string{
		`<th id="actions-head">Actions</th>`,
		`<td data-field="state" data-label="State" class="state paused">paused</td>`,
		`<button class="resume" data-action="resume">Resume</button><button class="run" data-action="run" disabled="" title="resume it first">Run now</button>`,
		`<button class="pause" data-action="pause">Pause</button><button class="run" data-action="run" title="end its idle or scheduled wait and run it now">Run now</button>`,
	} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page lacks %s:\n%s", want, dom)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// A refused action stays on the page after the refreshes that follow it: here
// a run of a worker that does not exist, as a stale row would ask for.
func TestPageKeepsARefusal(t *testing.T) {
	srv := servePage(t, backihttp.PageControls("/control"))
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	html, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The page as served, which asks to run "gone" once it has shown its
	// rows, as a click on a stale row would; the rest goes to the page's
	// server.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	clicking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["json"]; ok || r.URL.Path != "/" {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
		io.WriteString(w, `<script>setTimeout(() => act({name: "gone"}, "run"), 1500)</script>`)
	}))
	defer clicking.Close()
	dom := browsertest.DOM(t, clicking.URL+"/", 3*time.Second)
	if !strings.Contains(dom, "run gone: no such worker") {
		t.Fatalf("the refusal is not on the page after its refreshes:\n%s", dom)
	}
	if !strings.Contains(dom, `<tr data-worker="ticker">`) {
		t.Fatalf("the page did not refresh:\n%s", dom)
	}
	http.DefaultClient.CloseIdleConnections()
}

// A paused worker that waits to lead is paused, not pausing: only an
// iteration in flight makes a paused worker pausing.
func TestPageTellsPausedFromPausing(t *testing.T) {
	page := backihttp.NewPage()
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet), backi.WithObserver(page))
	started, release := make(chan struct{}, 1), make(chan struct{})
	busy := backi.Loop("busy", func(context.Context) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	h.Add(
		backi.Loop("follower", func(context.Context) error { return nil },
			backi.WithLeader(backitest.NewElector()), backi.WithPaused()),
		busy,
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		close(release)
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	srv := httptest.NewServer(page.Handler(h))
	defer srv.Close()
	<-started
	busy.Pause() // while its iteration is in flight
	dom := browsertest.DOM(t, srv.URL+"/", 2*time.Second)
	for _, want := range []string{
		`class="state campaigning">campaigning, paused</td>`,
		`class="state running">running, pausing</td>`,
	} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page lacks %s:\n%s", want, dom)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// PageControls takes a path on the page's own origin: a path that a browser
// reads as another host's ("//host", "/\host") would send the buttons'
// requests there, and is refused as a path without its leading slash is.
func TestPageControlsRefusesAnotherHost(t *testing.T) {
	for _, path := range []string{"//evil.example", "//evil.example/control", `/\evil.example`, "/", "control"} {
		func() {
			defer func() {
				if recover() == nil && path != "/" {
					t.Errorf("PageControls(%q) did not panic", path)
				}
			}()
			backihttp.PageControls(path)
		}()
	}
}
