// Package pgtest finds the PostgreSQL server that tests run against: the URL
// in $BACKI_PG_URL, or the local server; and starts throwaway servers for
// the tests that restart one. It uses only the standard library.
package pgtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// serverBin finds the directory of PostgreSQL's server programs (initdb,
// pg_ctl): pg_config --bindir, else pg_ctl on PATH, else Debian's
// /usr/lib/postgresql/*/bin. Without them the test is skipped, or fails
// under CI=true, saying what it needs.
func serverBin(t *testing.T) string {
	t.Helper()
	var found []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		found = append(found, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		found = append(found, filepath.Dir(p))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Reverse(debian) // the newest first
	for _, dir := range append(found, debian...) {
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
				return dir
			}
		}
	}
	msg := "this test runs a PostgreSQL server of its own and needs initdb and pg_ctl: none found through pg_config --bindir, on PATH or under /usr/lib/postgresql/*/bin"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Throwaway starts a PostgreSQL server of the test's own, in a temporary
// directory on a spare port, so that restarting it disturbs no other test.
// It returns the server's URL and a function that restarts it.
func Throwaway(t *testing.T) (string, func()) {
	t.Helper()
	URL(t) // skip, or fail under CI, like the other tests when there is no PostgreSQL
	bin := serverBin(t)
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// PostgreSQL refuses to run as root: run it as the postgres user when we are root.
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	pg := func(args ...string) {
		t.Helper()
		full := append(append([]string{}, asUser...), args...)
		out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	pg(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	ctl := filepath.Join(bin, "pg_ctl")
	pg(ctl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start")
	t.Cleanup(func() { pg(ctl, "-D", data, "-m", "immediate", "-w", "stop") })
	restart := func() {
		pg(ctl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-m", "fast", "-w", "restart")
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), restart
}
