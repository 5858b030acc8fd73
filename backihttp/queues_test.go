package backihttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/backi-go/backi/backihttp"
)

// memQueues is a Queues kept in memory, with one dead job per queue.
type memQueues struct {
	mu   sync.Mutex
	dead map[string][]backihttp.DeadJob
	done []string
}

func newMemQueues() *memQueues {
	return &memQueues{dead: map[string][]backihttp.DeadJob{
		"mail": {{ID: 1, Queue: "mail", Attempts: 25, LastError: `<script>alert(1)</script>`, Payload: `{"to":"a"}`}},
		"sms":  {{ID: 2, Queue: "sms", Attempts: 3, LastError: "no credit"}},
	}}
}

func (m *memQueues) Stats(context.Context) ([]backihttp.QueueStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []backihttp.QueueStats{{Queue: "mail", Due: 3, Dead: int64(len(m.dead["mail"]))}, {Queue: "sms", Dead: int64(len(m.dead["sms"]))}}, nil
}

func (m *memQueues) Dead(_ context.Context, queue string, limit int) ([]backihttp.DeadJob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	jobs := m.dead[queue]
	return jobs[:min(limit, len(jobs))], nil
}

func (m *memQueues) act(name string) func(context.Context, string, int64) error {
	return func(_ context.Context, queue string, id int64) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for i, j := range m.dead[queue] {
			if j.ID == id {
				m.dead[queue] = append(m.dead[queue][:i], m.dead[queue][i+1:]...)
				m.done = append(m.done, name+" "+queue)
				return nil
			}
		}
		return backihttp.ErrNoSuchJob
	}
}

func (m *memQueues) Retry(ctx context.Context, queue string, id int64) error {
	return m.act("retry")(ctx, queue, id)
}

func (m *memQueues) Discard(ctx context.Context, queue string, id int64) error {
	return m.act("discard")(ctx, queue, id)
}

func queueRequest(t *testing.T, h http.Handler, method, path string, header ...string) (int, string) {
	t.Helper()
	rec := serve(h, method, path, header...)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, rec.Body)
	}
	return rec.Code, rec.Body.String()
}

func TestQueueControl(t *testing.T) {
	qs := newMemQueues()
	var buf strings.Builder
	var mu sync.Mutex
	var asked []string
	h := backihttp.QueueControl(qs, backihttp.WithControlLogger(slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))),
		backihttp.WithAuthorize(func(r *http.Request, queue, action string) error {
			mu.Lock()
			asked = append(asked, action+" "+queue)
			mu.Unlock()
			if queue == "sms" && action != backihttp.ActionRead {
				return errors.New("the sms team only")
			}
			return nil
		}))

	code, body := queueRequest(t, h, "GET", "/queues")
	var stats []backihttp.QueueStats
	if err := json.Unmarshal([]byte(body), &stats); code != 200 || err != nil || len(stats) != 2 || stats[0].Due != 3 {
		t.Fatalf("GET /queues: %d %s", code, body)
	}
	code, body = queueRequest(t, h, "GET", "/queues/mail/dead?limit=10")
	var dead []backihttp.DeadJob
	if err := json.Unmarshal([]byte(body), &dead); code != 200 || err != nil || len(dead) != 1 || dead[0].LastError != `<script>alert(1)</script>` {
		t.Fatalf("GET dead: %d %s", code, body)
	}
	if strings.Contains(body, "<script>") {
		t.Fatalf("markup unescaped in %s", body)
	}
	for _, c := range []struct {
		method, path string
		header       []string
		code         int
	}{
		{"GET", "/queues/mail/dead?limit=0", nil, 400},
		{"GET", "/queues/mail/dead?limit=501", nil, 400},
		{"POST", "/queues", nil, 405},
		{"GET", "/queues/mail/dead/1/retry", nil, 405},
		{"POST", "/queues/mail/dead/1/retry", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"POST", "/queues/mail/dead/x/retry", nil, 404},
		{"POST", "/queues/mail/dead/1/explode", nil, 404},
		{"POST", "/queues/mail/dead/2/retry", nil, 404}, // the job of another queue
		{"POST", "/queues/sms/dead/2/retry", nil, 403},  // refused by authorize
		{"POST", "/elsewhere", nil, 404},
	} {
		if code, body := queueRequest(t, h, c.method, c.path, c.header...); code != c.code {
			t.Errorf("%s %s %v: %d %s, want %d", c.method, c.path, c.header, code, body, c.code)
		}
	}
	if code, body := queueRequest(t, h, "POST", "/queues/mail/dead/1/retry"); code != 200 {
		t.Fatalf("retry: %d %s", code, body)
	}
	if code, _ := queueRequest(t, h, "POST", "/queues/mail/dead/1/discard"); code != 404 {
		t.Fatalf("discard of a job no longer dead: %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(qs.done) != 1 || qs.done[0] != "retry mail" {
		t.Fatalf("actions taken: %v", qs.done)
	}
	if n := strings.Count(buf.String(), `"msg":"queue control"`); n != 8 {
		t.Fatalf("%d actions logged, want the 8 POSTs to actions:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), `"remote":"192.0.2.1:1234"`) {
		t.Fatalf("the log lacks the remote address:\n%s", buf.String())
	}
	if want := "read ,read mail,read mail,read mail,retry mail,retry sms,retry mail,discard mail"; strings.Join(asked, ",") != want {
		t.Fatalf("authorize asked %q, want %q", strings.Join(asked, ","), want)
	}
}
