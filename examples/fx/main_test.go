package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi/backihttp"
	"github.com/backi-go/backi/internal/demotest"
	"github.com/backi-go/backi/internal/leakcheck"
)

func TestMain(m *testing.M) {
	demotest.Main(main)
	leakcheck.Main(m)
}

// TestDemo runs the demo as a user would: it serves Hello World! and the
// host's status while the worker logs Running and Done, and SIGTERM, which
// fx handles, stops it with status 0.
func TestDemo(t *testing.T) {
	addr := demotest.FreeAddr(t)
	p := demotest.Start(t, "-addr", addr)
	p.WaitFor("msg=Running worker=hello")
	p.WaitFor("msg=Done worker=hello")

	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if code, body := get("/"); code != 200 || string(body) != "Hello World!" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := get(path); code != 200 {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
	}
	code, body := get("/status")
	var hs backihttp.HostStatus
	if err := json.Unmarshal(body, &hs); err != nil || code != 200 || hs.State != "running" ||
		len(hs.Workers) != 1 || hs.Workers[0].Name != "hello" || hs.Workers[0].Successes == 0 {
		t.Fatalf("GET /status = %d %s", code, body)
	}
	http.DefaultClient.CloseIdleConnections()

	p.Stop(2 * time.Second)
	for _, want := range []string{`msg="host stopping" reason="backifx: the fx app is stopping"`, `msg="host stopped"`} {
		if !strings.Contains(p.Log(), want) {
			t.Fatalf("no %s in the log:\n%s", want, p.Log())
		}
	}
}
