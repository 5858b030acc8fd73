// Package pgtest finds the PostgreSQL server that tests run against: the URL
// in $BACKI_PG_URL, or the local server. It uses only the standard library.
package pgtest

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// DefaultURL is the server every machine of the project runs.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test server's URL once it answers on its port. Without one
// the test is skipped with how to start it, or fails when CI=true.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("BACKI_PG_URL")
	if u == "" {
		u = DefaultURL
	}
	addr := "127.0.0.1:5432"
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		addr = p.Host
		if p.Port() == "" {
			addr = net.JoinHostPort(p.Hostname(), "5432")
		}
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is unreachable: %v", u, err)
		}
		t.Skipf("PostgreSQL at %s is unreachable (%v): start it with pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, or set BACKI_PG_URL", u, err)
	}
	conn.Close()
	return u
}
