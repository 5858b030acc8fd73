package backihttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/internal/browsertest"
)

// servePage runs a host with a healthy worker and a failing one whose error
// is markup, and serves its page.
func servePage(t *testing.T) *httptest.Server {
	t.Helper()
	page := backihttp.NewPage()
	h := backi.NewHost(backi.WithSignals(), backi.WithLogger(quiet), backi.WithObserver(page))
	h.Add(
		backi.Loop("ticker", func(ctx context.Context) error { time.Sleep(5 * time.Millisecond); return nil }),
		backi.Loop("broken", func(ctx context.Context) error {
			return errors.New(`<img src=x onerror="document.title='pwned'">`)
		}, backi.WithBackoff(backi.ConstantBackoff(10*time.Millisecond))),
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	srv := httptest.NewServer(page.Handler(h))
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
	if len(broken.Recent) == 0 || !broken.Recent[0].Failed || !strings.HasPrefix(broken.LastError, "<img") {
		t.Fatalf("broken %+v", broken)
	}
	if len(ticker.Recent) > backihttp.HistoryLen {
		t.Fatalf("%d points kept, want at most %d", len(ticker.Recent), backihttp.HistoryLen)
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
		`data-field="last_error" data-label="Last error" class="err">&lt;img src=x onerror="document.title='pwned'"&gt;</td>`,
		`<rect `, `class="fail"`,
	} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the page lacks %s:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "pwned</title>") || strings.Contains(dom, "<img src") {
		t.Fatalf("an error message became markup:\n%s", dom)
	}
}
