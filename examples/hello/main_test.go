package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
	http.DefaultClient.CloseIdleConnections()
	p.Stop(2 * time.Second)
	if want := `msg="host stopped"`; !strings.Contains(p.Log(), want) {
		t.Fatalf("no %s in the log:\n%s", want, p.Log())
	}
}
