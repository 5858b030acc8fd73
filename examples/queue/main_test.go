package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/demotest"
	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	demotest.Main(main)
	leakcheck.Main(m)
}

// Three replicas take orders and send receipts; kill -9 of one in the middle
// loses no receipt and sends none twice.
func TestKill9LosesNoReceipt(t *testing.T) {
	url := pgtest.URL(t)
	t.Setenv("DATABASE_URL", url)
	schema := fmt.Sprintf("examples_queue_%d", rand.Uint32())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	defer conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)

	var addrs []string
	var procs []*demotest.Proc
	for range 3 {
		addr := demotest.FreeAddr(t)
		p := demotest.Start(t, "-addr", addr, "-schema", schema)
		p.WaitFor(`msg="taking orders"`)
		p.WaitFor(`msg="host started"`)
		addrs, procs = append(addrs, addr), append(procs, p)
	}
	count := func(table string) int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.`+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const orders = 300
	for i := range orders {
		if i == orders/3 {
			procs[0].Kill() // a replica crashes, its batches in flight with it
		}
		addr := addrs[1+i%2]
		if i < orders/3 {
			addr = addrs[i%3]
		}
		resp, err := http.Post("http://"+addr+"/orders", "text/plain", strings.NewReader(fmt.Sprintf("buyer%d@example.com", i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("order %d: %s", i, resp.Status)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); count("receipts") < orders; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d receipts for %d orders after 30s", count("receipts"), orders)
		}
	}
	if n := count("orders"); n != orders {
		t.Fatalf("%d orders taken, want %d", n, orders)
	}
	if n := count("backi_jobs"); n != 0 {
		t.Fatalf("%d jobs left", n)
	}
	resp, err := http.Get("http://" + addrs[1] + "/backi/queues")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != 200 || string(body) != "[]\n" {
		t.Fatalf("GET /backi/queues of an empty queue: %d %s", resp.StatusCode, body)
	}
	for _, p := range procs[1:] {
		p.Stop(10 * time.Second)
	}
}
