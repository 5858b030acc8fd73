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

// TestDemo starts the demo, asks for a report now, and stops it.
func TestDemo(t *testing.T) {
	addr := demotest.FreeAddr(t)
	p := demotest.Start(t, "-addr", addr)
	p.WaitFor(`msg="worker started" worker=report`)

	var resp *http.Response
	var err error
	for range 50 { // the server may not listen yet
		if resp, err = http.Post("http://"+addr+"/report", "", nil); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if !strings.Contains(string(body), "next scheduled run at") {
		t.Fatalf("POST /report = %q", body)
	}
	p.WaitFor(`msg="run on Wake" worker=report`)
	p.WaitFor("sending the report")
	p.Stop(2 * time.Second)
}
