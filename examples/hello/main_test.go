package main

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/browsertest"
	"github.com/backi-go/backi/internal/demotest"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) {
	demotest.Main(main)
	leakcheck.Main(m)
}

// TestDemo runs the demo as a user would: it serves Hello World!, the worker
// logs Running and Done, and SIGTERM stops it with status 0.
func TestDemo(t *testing.T) {
	addr := demotest.FreeAddr(t)
	p := demotest.Start(t, "-addr", addr)
	p.WaitFor("msg=Running worker=hello")
	p.WaitFor("msg=Done worker=hello")

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != 200 || string(body) != "Hello World!" {
		t.Fatalf("GET / = %d %q", resp.StatusCode, body)
	}
	for _, path := range []string{"/livez", "/readyz", "/status", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) && !strings.Contains(string(body), `"name":"hello"`) &&
			!strings.Contains(string(body), `backi_iterations_total{result="success",worker="hello"}`) {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
	// The controls pause the worker: it logs so, and its status says so.
	resp, err = http.Post("http://"+addr+"/backi/control/workers/hello/pause", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"paused":true`) {
		t.Fatalf("POST pause = %d %s", resp.StatusCode, body)
	}
	p.WaitFor("msg=\"worker paused\" worker=hello")
	http.DefaultClient.CloseIdleConnections()
	p.Stop(2 * time.Second)
}

// TestStatusPageInABrowser loads the demo's status page in headless Chromium,
// checks its row against the worker's status, and takes a screenshot.
func TestStatusPageInABrowser(t *testing.T) {
	addr := demotest.FreeAddr(t)
	p := demotest.Start(t, "-addr", addr)
	p.WaitFor("msg=Done worker=hello")
	p.WaitFor("msg=Done worker=hello")

	before := workerStatus(t, addr)
	dom := browsertest.DOM(t, "http://"+addr+"/backi", 2*time.Second)
	after := workerStatus(t, addr)

	field := func(name string) string {
		m := regexp.MustCompile(`data-field="` + name + `"[^>]*>(.*?)</td>`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("no %s cell in the page:\n%s", name, dom)
		}
		return regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], "") // its text

	}
	if !strings.Contains(dom, `<tr data-worker="hello">`) || field("name") != "hello" {
		t.Fatalf("no row for the worker:\n%s", dom)
	}
	iterations, err := strconv.ParseUint(field("iterations"), 10, 64)
	if err != nil || iterations < before.Iterations || iterations > after.Iterations {
		t.Fatalf("the page shows %s iterations; the status said %d then %d", field("iterations"), before.Iterations, after.Iterations)
	}
	if field("failures") != "0" || field("consecutive_failures") != "0" || field("last_error") != "—" {
		t.Fatalf("the page shows failures the status does not have:\n%s", dom)
	}
	if st := field("state"); st != "running" {
		t.Fatalf("the page shows state %q", st)
	}
	if !strings.Contains(dom, `class="ok"`) {
		t.Fatalf("the chart shows no iteration:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "status-page.png")
	browsertest.Screenshot(t, "http://"+addr+"/backi", shot, 1500, 260)
	t.Logf("screenshot: %s", shot)
	http.DefaultClient.CloseIdleConnections()
	p.Stop(2 * time.Second)
	if want := `msg="host stopped"`; !strings.Contains(p.Log(), want) {
		t.Fatalf("no %s in the log:\n%s", want, p.Log())
	}
}
