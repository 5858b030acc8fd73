// Package browsertest drives a headless Chromium for tests of pages the
// project serves. Without Chromium the test is skipped with a message, unless
// CI=true: then it fails, since CI installs Chromium.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Chromium returns the browser's path, skipping or failing t without one.
func Chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium: CI must install it (apt-get install -y chromium)")
	}
	t.Skip("no Chromium on this machine: apt-get install -y chromium to run this test")
	return ""
}

// Flags are the command-line flags of a headless Chromium for tests, without
// its profile directory.
func Flags() []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"}
}

func run(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := append(Flags(), "--user-data-dir="+t.TempDir())
	cmd := exec.CommandContext(ctx, Chromium(t), append(base, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

// DOM loads url, lets its scripts run for about budget, and returns the
// document as Chromium then serialises it.
func DOM(t *testing.T, url string, budget time.Duration) string {
	t.Helper()
	return string(run(t, "--virtual-time-budget="+strconv.FormatInt(budget.Milliseconds(), 10), "--dump-dom", url))
}

// Screenshot loads url and saves a PNG of it, width×height pixels, at path.
func Screenshot(t *testing.T, url, path string, width, height int) {
	t.Helper()
	run(t, "--virtual-time-budget=2000", "--hide-scrollbars",
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "--screenshot="+path, url)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", path, err)
	}
}
