package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/internal/browsertest"
	"github.com/backi-go/backi/internal/demotest"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestControlsInABrowser clicks the status page's buttons in headless
// Chromium: Pause (confirmed) pauses the worker, as its status and the page
// show within a second, and Resume resumes it. It keeps a screenshot of the
// page with the paused worker (in $BACKI_SCREENSHOT, or the test's temporary
// directory): the README's.
func TestControlsInABrowser(t *testing.T) {
	addr := demotest.FreeAddr(t)
	p := demotest.Start(t, "-addr", addr)
	p.WaitFor("msg=Done worker=hello")

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(browsertest.Chromium(t)), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1500, 300)}
	for _, f := range browsertest.Flags() {
		opts = append(opts, chromedp.Flag(strings.TrimPrefix(f, "--"), true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()

	// A confirmation dialog is accepted on a goroutine of its own: the click
	// that opened it returns only once it is closed.
	dialogs, confirmed := make(chan string, 4), make(chan string, 4)
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs <- d.Message
		}
	}); err != nil {
		t.Fatal(err)
	}
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			select {
			case msg := <-dialogs:
				if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
					t.Errorf("accepting the dialog: %v", err)
				}
				confirmed <- msg
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { stop(); <-accepting }()

	row := `tr[data-worker="hello"]`
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1500, 190), chromedp.Navigate("http://"+addr+"/backi"), chromedp.WaitVisible(row+` button[data-action="pause"]`)); err != nil {
		t.Fatal(err)
	}
	clicked := time.Now()
	if err := chromedp.Do(ctx, chromedp.Click(row+` button[data-action="pause"]`)); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-confirmed:
		if !strings.Contains(msg, "Pause hello?") {
			t.Fatalf("the confirmation asks %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pause asked for no confirmation")
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(row+` button[data-action="resume"]`)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(clicked); d > time.Second {
		t.Fatalf("the page showed the pause %v after the click, want within 1s", d)
	}
	if st := workerStatus(t, addr); !st.Paused {
		t.Fatalf("after the click the worker's status is %+v", st)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('tr[data-worker="hello"] td[data-field="state"]').textContent === "paused"`,
		chromedp.WithPollingTimeout(3*time.Second))); err != nil {
		t.Fatalf("the page never showed the state paused: %v", err)
	}
	if host, err := chromedp.Run(ctx, chromedp.Text("#host")); err != nil || !strings.Contains(host, " 1 worker ") {
		t.Fatalf("the page's header says %q: %v", host, err)
	}

	shot := os.Getenv("BACKI_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "status-page.png")
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	if err := chromedp.Do(ctx, chromedp.Click(row+` button[data-action="resume"]`), chromedp.WaitVisible(row+` button[data-action="pause"]`)); err != nil {
		t.Fatal(err)
	}
	if st := workerStatus(t, addr); st.Paused {
		t.Fatalf("after Resume the worker's status is %+v", st)
	}
	p.WaitFor(`msg="worker resumed" worker=hello`)
	cancel()
	http.DefaultClient.CloseIdleConnections()
	p.Stop(2 * time.Second)
}

func workerStatus(t *testing.T, addr string) backihttp.WorkerStatus {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hs backihttp.HostStatus
	if err := json.NewDecoder(resp.Body).Decode(&hs); err != nil || len(hs.Workers) != 1 {
		t.Fatalf("status: %v %+v", err, hs)
	}
	return hs.Workers[0]
}

// TestARefusedActionShowsWhy clicks Pause on a page whose Control refuses it:
// the page says why, and keeps saying it past its next refreshes, rather than
// erasing the refusal at once.
func TestARefusedActionShowsWhy(t *testing.T) {
	status := backihttp.NewPage()
	host := backi.NewHost(backi.WithSignals(), backi.WithLogger(slog.New(slog.DiscardHandler)), backi.WithObserver(status))
	host.Add(backi.Loop("hello", func(context.Context) error { return backi.ErrNoWork }))
	mux := http.NewServeMux()
	mux.Handle("GET /backi", status.Handler(host, backihttp.PageControls("/backi/control")))
	mux.Handle("/backi/control/", http.StripPrefix("/backi/control", backihttp.Control(host,
		backihttp.WithControlLogger(slog.New(slog.DiscardHandler)),
		backihttp.WithAuthorize(func(*http.Request, string, string) error { return errors.New("operators only") }))))
	srv := httptest.NewServer(mux)
	hctx, stopHost := context.WithCancel(context.Background())
	hostDone := make(chan error, 1)
	go func() { hostDone <- host.Run(hctx) }()
	defer func() {
		stopHost()
		if err := <-hostDone; err != nil {
			t.Error(err)
		}
		srv.Close()
	}()

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(browsertest.Chromium(t)), chromedp.UserDataDir(t.TempDir())}
	for _, f := range browsertest.Flags() {
		opts = append(opts, chromedp.Flag(strings.TrimPrefix(f, "--"), true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()

	button := `tr[data-worker="hello"] button[data-action="pause"]`
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/backi"), chromedp.WaitVisible(button)); err != nil {
		t.Fatal(err)
	}
	// The operator confirms the pause.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`window.confirm = () => true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(button)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // two refreshes of the page
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if host.Workers()[0].Status().Paused {
		t.Fatal("the refused pause was taken")
	}
	if !strings.Contains(text, "operators only") {
		t.Fatalf("the page does not say why the pause was refused:\n%s", text)
	}
}
