// Package readme checks that every Go block in the README compiles, and runs
// the one that works against PostgreSQL. Each block follows an HTML comment,
// invisible on the page, that starts with "readme-test:" and holds the file
// the block goes into, with the line BLOCK where it goes.
package readme

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/internal/pgtest"

	// What the README's blocks import, so that this module requires it.
	_ "github.com/backi-go/backi/cron"
	_ "github.com/backi-go/backi/pgleader"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// A block is a Go block of the README, in the file its comment makes.
type block struct {
	line int    // of the block's first line in the README
	kind string // what the comment says is done with it: "compiled ..." or "run ..."
	file string
}

var glued = regexp.MustCompile("(?s)<!-- readme-test: ([^\n]*)\n(.*?)\n-->\n```go\n(.*?)\n```")

// blocks returns the README's Go blocks, and fails the test for one that has
// no comment before it.
func blocks(t *testing.T) []block {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	var out []block
	for _, m := range glued.FindAllStringSubmatchIndex(text, -1) {
		kind, glue, code := text[m[2]:m[3]], text[m[4]:m[5]], text[m[6]:m[7]]
		if !strings.Contains(glue, "BLOCK") {
			t.Fatalf("README line %d: the readme-test comment has no BLOCK line", strings.Count(text[:m[0]], "\n")+1)
		}
		out = append(out, block{line: strings.Count(text[:m[6]], "\n") + 1, kind: kind, file: strings.Replace(glue, "BLOCK", code, 1)})
	}
	if all := strings.Count(text, "```go\n"); all != len(out) {
		t.Fatalf("the README has %d Go blocks, %d of them after a readme-test comment: give each one", all, len(out))
	}
	return out
}

// program makes b a main package in a directory of this module that exists
// only for the go command (an overlay), and returns the go command's
// arguments for it.
func program(t *testing.T, b block, i int) []string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte(b.file), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := fmt.Sprintf("./block%d", i)
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(dir, pkg, "main.go"): src}})
	ov := filepath.Join(t.TempDir(), "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-overlay", ov, pkg}
}

func TestReadmeBlocks(t *testing.T) {
	for i, b := range blocks(t) {
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			args := program(t, b, i)
			if !strings.HasPrefix(b.kind, "run") {
				if out, err := exec.Command("go", append([]string{"build", "-o", os.DevNull}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("the README's block at line %d does not compile:\n%s", b.line, out)
				}
				return
			}
			cmd := exec.Command("go", append([]string{"run"}, args...)...)
			cmd.Env = append(os.Environ(), "BACKI_PG_URL="+pgtest.URL(t))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "successes true failures 0") {
				t.Fatalf("the README's block at line %d, run against PostgreSQL: %v\n%s", b.line, err, out)
			}
		})
	}
}

func TestMain(m *testing.M) { leakcheck.Main(m) }
