// Package readme checks that every Go block in the README compiles and is
// gofmt-formatted, and runs the one marked to run against PostgreSQL. Each
// block follows an HTML comment, invisible on the page, whose first line is
// "readme-test: compiled ..." or "readme-test: run against PostgreSQL ..."
// and whose other lines are the file the block goes into, with a line BLOCK
// alone where it goes, indented as the block's code is there. The program
// that runs must print "successes true failures 1".
package readme

import (
	"context"
	"encoding/json"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/backi-go/backi/internal/leakcheck"
	"github.com/backi-go/backi/internal/pgtest"

	// What the README's blocks import, so that this module requires it.
	_ "github.com/backi-go/backi/backido"
	_ "github.com/backi-go/backi/backifx"
	_ "github.com/backi-go/backi/cron"
	_ "github.com/backi-go/backi/pgleader"
	_ "github.com/backi-go/backi/pgqueue"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/samber/do/v2"
	_ "go.uber.org/fx"
)

// A block is a Go block of the README, in the file its comment makes.
type block struct {
	line int  // of the block's first line in the README
	run  bool // the comment's first words are "run against PostgreSQL"; else "compiled"
	file string
}

var (
	glued = regexp.MustCompile("(?s)<!-- readme-test: ([^\n]*)\n(.*?)\n-->\n```go\n(.*?)\n```")
	// Every Go block, however its fence is written: indented (in a list),
	// longer, of tildes. The info string is on the fence's own line.
	fences = regexp.MustCompile("(?mi)^[ \\t]*(`{3,}|~{3,})[ \\t]*go(lang)?\\b")
	place  = regexp.MustCompile(`(?m)^([ \t]*)BLOCK$`)
)

// blocks returns the README's Go blocks, and fails the test for one that has
// no comment before it, or a comment that does not say what to do with it.
func blocks(t *testing.T) []block {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out, err := extract(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// extract returns the Go blocks of a README's text, or why it cannot.
func extract(text string) ([]block, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []block
	runs := 0
	for _, m := range glued.FindAllStringSubmatchIndex(text, -1) {
		kind, glue, code := text[m[2]:m[3]], text[m[4]:m[5]], text[m[6]:m[7]]
		line := strings.Count(text[:m[6]], "\n") + 1
		// The pattern takes the glue up to the first end of a comment that
		// a Go block follows at once: a comment's end inside it means that
		// the comment it began with is not right before a block.
		if strings.Contains(kind, "-->") || strings.Contains(glue, "-->") {
			return nil, fmt.Errorf("README line %d: the readme-test comment is not right before a Go block (\"-->\", then \"```go\" on the next line)",
				strings.Count(text[:m[0]], "\n")+1)
		}
		if n := len(place.FindAllStringIndex(glue, -1)); n != 1 {
			return nil, fmt.Errorf("README line %d: the readme-test comment has %d lines that are BLOCK alone, want 1", line, n)
		}
		// The block takes the indentation of its BLOCK line, as gofmt
		// would give it there.
		indent := place.FindStringSubmatch(glue)[1]
		lines := strings.Split(code, "\n")
		for i, l := range lines {
			if l != "" {
				lines[i] = indent + l
			}
		}
		code = strings.Join(lines, "\n")
		b := block{line: line, run: strings.HasPrefix(kind, "run against PostgreSQL"), file: place.ReplaceAllLiteralString(glue, code) + "\n"}
		if !b.run && !strings.HasPrefix(kind, "compiled") {
			return nil, fmt.Errorf("README line %d: the readme-test comment says %q; want \"compiled ...\" or \"run against PostgreSQL ...\"", line, kind)
		}
		if b.run {
			runs++
		}
		out = append(out, b)
	}
	if all := len(fences.FindAllStringIndex(text, -1)); all != len(out) || all == 0 || runs != 1 {
		return nil, fmt.Errorf("the README has %d Go blocks, %d of them after a readme-test comment, %d to run: give each one a comment, and run one", all, len(out), runs)
	}
	return out, nil
}

// build builds b as a main package in a directory of this module that
// exists only for the go command (an overlay), into the returned program, or
// fails the test naming the README's line.
func build(t *testing.T, b block, i int) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	src, ov, prog := filepath.Join(tmp, "main.go"), filepath.Join(tmp, "overlay.json"), filepath.Join(tmp, "prog")
	if err := os.WriteFile(src, []byte(b.file), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := fmt.Sprintf("./block%d", i)
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(dir, pkg, "main.go"): src}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-overlay", ov, "-o", prog, pkg).CombinedOutput(); err != nil {
		t.Fatalf("the README's block at line %d does not compile:\n%s", b.line, out)
	}
	if formatted, err := format.Source([]byte(b.file)); err == nil && string(formatted) != b.file {
		t.Errorf("the README's block at line %d, with its glue, is not gofmt-formatted; gofmt makes it:\n%s", b.line, formatted)
	}
	return prog
}

func TestReadmeBlocks(t *testing.T) {
	for i, b := range blocks(t) {
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			prog := build(t, b, i)
			if !b.run {
				return
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, prog)
			cmd.Env = append(os.Environ(), "BACKI_PG_URL="+pgtest.URL(t))
			cmd.WaitDelay = time.Second
			var logs strings.Builder
			cmd.Stderr = &logs
			out, err := cmd.Output()
			if err != nil || strings.TrimSpace(string(out)) != "successes true failures 1" {
				t.Fatalf("the README's block at line %d, run against PostgreSQL: %v\n%s%s", b.line, err, out, logs.String())
			}
		})
	}
}

func TestMain(m *testing.M) { leakcheck.Main(m) }

// runBlock is a Go block with its comment, to run, for the tests of extract.
const runBlock = "<!-- readme-test: run against PostgreSQL\npackage main\n\nfunc main() {\n\tBLOCK\n}\n-->\n```go\nprintln()\n```\n"

func TestExtractSeesOnlyGoFences(t *testing.T) {
	for name, text := range map[string]string{
		"a paragraph that starts with Go after a block": runBlock + "\nGo's own tests run too.\n",
		"a fence with no language, its first line go":   runBlock + "\n```\ngo get github.com/backi-go/backi\n```\n",
		"a blank line, then go, after a closing fence":  "```sh\nls\n```\n\ngo on reading.\n" + runBlock,
	} {
		t.Run(name, func(t *testing.T) {
			bs, err := extract(text)
			if err != nil || len(bs) != 1 {
				t.Errorf("extract: %d blocks, %v; want the one Go block", len(bs), err)
			}
		})
	}
}

// Every Go block counts, however its fence is written: one that the glue's
// pattern does not take is reported, not left out of the test.
func TestExtractCountsEveryGoFence(t *testing.T) {
	for name, text := range map[string]string{
		"indented in a list":   runBlock + "\n1. Then:\n\n   ```go\n   x := 1\n   ```\n",
		"indented by a space":  runBlock + "\n ```go\nx := 1\n ```\n",
		"four backticks":       runBlock + "\n````go\nx := 1\n````\n",
		"tildes, capital Go":   runBlock + "\n~~~Go\nx := 1\n~~~\n",
		"a space before go":    runBlock + "\n``` go\nx := 1\n```\n",
		"golang":               runBlock + "\n```golang\nx := 1\n```\n",
		"a comment, blank, go": "<!-- readme-test: compiled\npackage p\nBLOCK\n-->\n\n```go\nvar x = 1\n```\n\n" + runBlock,
	} {
		t.Run(name, func(t *testing.T) {
			if bs, err := extract(text); err == nil {
				t.Errorf("extract took %d blocks and no error; want the uncommented Go block reported", len(bs))
			} else {
				t.Log(err)
			}
		})
	}
}

// A comment that a blank line parts from its block is named as such, rather
// than taken with what follows up to the next block's comment.
func TestExtractNamesACommentApartFromItsBlock(t *testing.T) {
	text := "<!-- readme-test: compiled\npackage p\nBLOCK\n-->\n\n```go\nvar x = 1\n```\n\n" + runBlock
	_, err := extract(text)
	if err == nil || !strings.Contains(err.Error(), "README line 1:") || !strings.Contains(err.Error(), "right before") {
		t.Errorf("extract: %v; want an error that the comment at line 1 is not right before a Go block", err)
	}
}
