package backihttp_test

// Hostile values and requests that the handlers must survive. A case whose
// failure would crash the test binary runs in a child process (see inChild).

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi/backihttp"
)

const childEnv = "BACKIHTTP_CHILD"

// inChild runs body in a child process, the test binary re-executed to run
// only t, and fails t unless the child passes; in that child, it runs body.
func inChild(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		body(t)
		return
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), "GORACE=atexit_sleep_ms=0")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	shown := string(out)
	if len(shown) > 4000 {
		shown = "…" + shown[len(shown)-4000:]
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("the child failed: %v\n%s", err, shown)
	}
}

// bomb is an error whose Error method panics with the bomb itself: fmt
// contains a panic in an Error method only once, so fmt.Sprint(bomb{})
// panics, and so does printing the panic's value.
type bomb struct{}

func (b bomb) Error() string { panic(b) }

// An authorize function that returns or panics with a value whose text
// panics refuses the action; it does not crash the process.
func TestControlSurvivesAnAuthorizerWithAPanickingValue(t *testing.T) {
	for _, mode := range []string{"returns", "panics"} {
		t.Run(mode, func(t *testing.T) {
			inChild(t, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c, w, _ := controlled(t, "mailer", backihttp.WithAuthorize(func(*http.Request, string, string) error {
						if mode == "panics" {
							panic(bomb{})
						}
						return bomb{}
					}))
					code, ans, _ := post(t, c, "/workers/mailer/pause")
					if code != 403 && code != 500 || ans.Error == "" || w.Status().Paused {
						t.Fatalf("%d %+v, paused %v: want the pause refused", code, ans, w.Status().Paused)
					}
				})
			})
		})
	}
}
