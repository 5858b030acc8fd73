package main

import (
	"bytes"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backi-go/backi/internal/leakcheck"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The current tree, released as the next version and published to a module
// proxy, can be fetched module by module, as a user would, by a module outside
// the repository, without the workspace: each public module's packages build,
// and the code of what only its tests need is not downloaded.
func TestPublishedModulesAreGettable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every public module from a module proxy")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	stage := t.TempDir()
	copyTree(t, repo, stage)
	mods, err := modules(stage)
	if err != nil {
		t.Fatal(err)
	}
	v := nextVersion(t, repo)
	if _, err := requireVersion(stage, mods, v, false); err != nil {
		t.Fatal(err)
	}
	proxy := t.TempDir()
	if err := publish(stage, mods, v, proxy); err != nil {
		t.Fatal(err)
	}

	// The machine's module cache serves the third-party modules, and the
	// usual proxy what it lacks; a cache of the test's own keeps the
	// published version out of the machine's.
	usual := goEnv(t, "GOPROXY")
	local := filepath.Join(goEnv(t, "GOMODCACHE"), "cache", "download")
	cache := t.TempDir()
	env := append(os.Environ(),
		"GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-modcacherw",
		"GOMODCACHE="+cache,
		"GOPROXY=file://"+proxy+",file://"+local+","+usual,
		"GONOSUMDB="+rootPath,
	)
	t.Logf("published %s to %s", v, proxy)

	for _, m := range mods {
		if !m.Public {
			continue
		}
		t.Run(m.Dir, func(t *testing.T) {
			dir := t.TempDir()
			goCmd(t, dir, env, "mod", "init", "example.com/consumer")
			goCmd(t, dir, env, "get", m.Path+"@"+v)
			pkgs, imports := packages(t, filepath.Join(stage, filepath.FromSlash(m.Dir)), m.Path)
			var src strings.Builder
			src.WriteString("package main\n\nimport (\n")
			for _, p := range pkgs {
				fmt.Fprintf(&src, "\t_ %q\n", p)
			}
			src.WriteString(")\n\nfunc main() {}\n")
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			goCmd(t, dir, env, "build", "-o", os.DevNull, ".")

			// The go.mod of a test-only requirement is read; its code
			// must not be fetched.
			only := testOnly(t, filepath.Join(stage, filepath.FromSlash(m.Dir)), imports)
			t.Logf("only its tests use %v", only)
			for _, r := range only {
				escaped, err := module.EscapePath(r.Path)
				if err != nil {
					t.Fatal(err)
				}
				extracted := filepath.Join(cache, filepath.FromSlash(escaped)+"@"+r.Version)
				zipped := filepath.Join(cache, "cache", "download", filepath.FromSlash(escaped), "@v", r.Version+".zip")
				for _, p := range []string{extracted, zipped} {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("%s's consumer downloaded the code of %s, which only its tests use: %s", m.Path, r, p)
					}
				}
			}
		})
	}
}

// Every module of the repository requires the others at one released
// version, which is not v0.0.0, and replaces them with their directories for
// development.
func TestModulesRequireEachOtherAtOneVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := modules(root)
	if err != nil {
		t.Fatal(err)
	}
	dirs := make(map[string]string)
	for _, m := range mods {
		dirs[m.Path] = m.Dir
	}
	versions := make(map[string][]string)
	for _, m := range mods {
		f := parse(t, filepath.Join(root, m.Dir, "go.mod"))
		replaced := make(map[string]string)
		for _, r := range f.Replace {
			replaced[r.Old.Path] = r.New.Path
		}
		for _, r := range f.Require {
			dir, ours := dirs[r.Mod.Path]
			if !ours {
				continue
			}
			versions[r.Mod.Version] = append(versions[r.Mod.Version], m.Dir)
			rel, err := filepath.Rel(filepath.Join(root, m.Dir), filepath.Join(root, dir))
			if err != nil {
				t.Fatal(err)
			}
			if got := replaced[r.Mod.Path]; filepath.Clean(got) != rel {
				t.Errorf("%s/go.mod: replace %s => %q, want => %s (its directory)", m.Dir, r.Mod.Path, got, rel)
			}
		}
	}
	if len(versions) != 1 {
		t.Fatalf("the modules require each other at several versions: %v", versions)
	}
	for v := range versions {
		if !semver.IsValid(v) || v == "v0.0.0" {
			t.Fatalf("the modules require each other at %s, not a released version", v)
		}
	}
}

func TestReleaseTagsEveryPublicModule(t *testing.T) {
	repo := fakeRepo(t)
	var out bytes.Buffer
	if err := release(repo, "v0.2.0", false, &out); err != nil {
		t.Fatal(err)
	}
	tags, _ := git(repo, "tag", "--list")
	if want := "cron/v0.2.0\nv0.1.0\nv0.2.0"; tags != want {
		t.Errorf("tags:\n%s\nwant:\n%s", tags, want)
	}
	f := parse(t, filepath.Join(repo, "cron", "go.mod"))
	if got := f.Require[0].Mod.Version; got != "v0.2.0" {
		t.Errorf("cron requires the root at %s, want v0.2.0", got)
	}
	if len(f.Replace) != 1 {
		t.Errorf("cron's replace for development was dropped")
	}
	if status, _ := git(repo, "status", "--porcelain"); status != "" {
		t.Errorf("the release left changes behind:\n%s", status)
	}
	if !strings.Contains(out.String(), "git push origin HEAD v0.2.0 cron/v0.2.0") {
		t.Errorf("the release does not say how to publish it:\n%s", &out)
	}
}

func TestReleaseRefuses(t *testing.T) {
	repo := fakeRepo(t)
	for _, v := range []string{"0.2.0", "v0.2", "v0.2.0+build", "v0.1.0", "v0.0.9"} {
		if err := release(repo, v, false, new(bytes.Buffer)); err == nil {
			t.Errorf("version %q: released", v)
		}
	}
	if _, err := git(repo, "tag", "cron/v0.3.0"); err != nil {
		t.Fatal(err)
	}
	if err := release(repo, "v0.3.0", false, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "cron/v0.3.0, already tagged") {
		t.Errorf("a nested module's tag exists: got %v", err)
	}
	if _, err := git(repo, "tag", "-d", "cron/v0.3.0"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "new.go"), []byte("package backi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := release(repo, "v0.2.0", false, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "new.go") {
		t.Errorf("a dirty tree: got %v, want an error naming the change", err)
	}
	if tags, _ := git(repo, "tag", "--list"); tags != "v0.1.0" {
		t.Errorf("a refused release tagged: %s", tags)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	repo := fakeRepo(t)
	var out bytes.Buffer
	if err := release(repo, "v0.2.0", true, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "cron/go.mod") || !strings.Contains(out.String(), "cron/v0.2.0") {
		t.Errorf("the dry run does not say what it would do:\n%s", &out)
	}
	if tags, _ := git(repo, "tag", "--list"); tags != "v0.1.0" {
		t.Errorf("a dry run tagged: %s", tags)
	}
	if status, _ := git(repo, "status", "--porcelain"); status != "" {
		t.Errorf("a dry run changed files:\n%s", status)
	}
}

// The first release finds the require lines at its version already: it
// commits nothing, tags HEAD, and its dry run says so.
func TestFirstRelease(t *testing.T) {
	repo := fakeRepo(t)
	if _, err := git(repo, "tag", "-d", "v0.1.0"); err != nil {
		t.Fatal(err)
	}
	head, _ := git(repo, "rev-parse", "HEAD")
	var dry bytes.Buffer
	if err := release(repo, "v0.1.0", true, &dry); err != nil {
		t.Fatal(err)
	}
	if want := "the require lines are at v0.1.0 already; would tag v0.1.0 cron/v0.1.0\n"; dry.String() != want {
		t.Errorf("the dry run says:\n%s\nwant:\n%s", &dry, want)
	}
	if err := release(repo, "v0.1.0", false, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	if now, _ := git(repo, "rev-parse", "HEAD"); now != head {
		t.Errorf("the first release committed: HEAD moved from %s to %s", head, now)
	}
	for _, tag := range []string{"v0.1.0", "cron/v0.1.0"} {
		if at, err := git(repo, "rev-list", "-n1", tag); err != nil || at != head {
			t.Errorf("tag %s is at %q (%v), want HEAD %s", tag, at, err, head)
		}
	}
}

// fakeRepo is a repository with a root module released at v0.1.0, a public
// nested module and an example.
func fakeRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                "module github.com/backi-go/backi\n\ngo 1.26\n",
		"backi.go":              "package backi\n",
		"cron/go.mod":           "module github.com/backi-go/backi/cron\n\ngo 1.26\n\nrequire github.com/backi-go/backi v0.1.0\n\nreplace github.com/backi-go/backi => ../\n",
		"examples/hello/go.mod": "module github.com/backi-go/backi/examples/hello\n\ngo 1.26\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"config", "user.email", "release@example.com"},
		{"config", "user.name", "release test"},
		{"add", "."},
		{"commit", "-q", "-m", "first"},
		{"tag", "v0.1.0"},
	} {
		if _, err := git(dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyTree copies the files git knows of, or would add, from repo to dst,
// leaving out the workspace, which a consumer never sees.
func copyTree(t *testing.T, repo, dst string) {
	t.Helper()
	list, err := git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		t.Fatal(err)
	}
	for name := range strings.SplitSeq(list, "\x00") {
		if name == "" || name == "go.work" || name == "go.work.sum" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted, not yet committed
			}
			t.Fatal(err)
		}
		p := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// nextVersion is the minor version after the highest tagged one, or v0.1.0.
func nextVersion(t *testing.T, repo string) string {
	t.Helper()
	tags, err := git(repo, "tag", "--list", "v*")
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	for _, tag := range strings.Fields(tags) {
		var ma, mi, pa int
		if _, err := fmt.Sscanf(semver.Canonical(tag), "v%d.%d.%d", &ma, &mi, &pa); err == nil && (ma > major || ma == major && mi >= minor) {
			major, minor = ma, mi+1
		}
	}
	return fmt.Sprintf("v%d.%d.0", major, max(minor, 1))
}

// packages lists the importable packages of the module in dir, whose path is
// modPath, and what they import.
func packages(t *testing.T, dir, modPath string) (pkgs []string, imports []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if p != dir {
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		if slices.Contains(strings.Split(rel, "/"), "internal") || d.Name() == "testdata" {
			return filepath.SkipDir
		}
		bp, err := build.ImportDir(p, 0)
		if err != nil || bp.Name == "main" {
			return nil // no Go files, or a command
		}
		pkgs = append(pkgs, path.Join(modPath, rel))
		imports = append(imports, bp.Imports...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatalf("%s: no package to import", modPath)
	}
	return pkgs, imports
}

// testOnly returns the direct requirements of the module in dir that none of
// imports comes from: the modules only its tests use.
func testOnly(t *testing.T, dir string, imports []string) []module.Version {
	t.Helper()
	var only []module.Version
	for _, r := range parse(t, filepath.Join(dir, "go.mod")).Require {
		if r.Indirect || strings.HasPrefix(r.Mod.Path, rootPath) {
			continue
		}
		used := slices.ContainsFunc(imports, func(imp string) bool {
			return imp == r.Mod.Path || strings.HasPrefix(imp, r.Mod.Path+"/")
		})
		if !used {
			only = append(only, r.Mod)
		}
	}
	return only
}

func parse(t *testing.T, file string) *modfile.File {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(file, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func goCmd(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// A module whose path has no major version suffix cannot be released at v2
// or above: the go command refuses such a tag, so the release would tag
// versions nobody can fetch.
func TestReleaseRefusesAMajorVersionThePathsLack(t *testing.T) {
	repo := fakeRepo(t)
	err := release(repo, "v2.0.0", false, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "v2") {
		t.Errorf("release v2.0.0 of modules without /v2 in their paths: got %v, want an error", err)
	}
	if tags, _ := git(repo, "tag", "--list"); tags != "v0.1.0" {
		t.Errorf("a refused release tagged:\n%s", tags)
	}
}

// A nested module's tag, left by an interrupted release or made by hand, is
// seen before anything changes: the release neither commits nor tags the
// root and then fails halfway, leaving a version it refuses to make again.
func TestReleaseRefusesANestedTagThatExists(t *testing.T) {
	for _, tc := range []struct{ tag, v string }{
		{"cron/v0.2.0", "v0.2.0"}, // the very tag the release would make
		{"cron/v0.3.0", "v0.2.0"}, // a greater version of the nested module
	} {
		t.Run(tc.tag, func(t *testing.T) {
			repo := fakeRepo(t)
			if _, err := git(repo, "tag", tc.tag); err != nil {
				t.Fatal(err)
			}
			head, _ := git(repo, "rev-parse", "HEAD")
			err := release(repo, tc.v, false, new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tc.tag) {
				t.Errorf("release %s with %s tagged: got %v, want an error naming the tag", tc.v, tc.tag, err)
			}
			if tags, _ := git(repo, "tag", "--list"); tags != tc.tag+"\nv0.1.0" {
				t.Errorf("a refused release tagged:\n%s", tags)
			}
			if now, _ := git(repo, "rev-parse", "HEAD"); now != head {
				t.Errorf("a refused release committed")
			}
			if status, _ := git(repo, "status", "--porcelain"); status != "" {
				t.Errorf("a refused release left changes:\n%s", status)
			}
		})
	}
}

// An untracked file is a change whatever the user's git configuration says
// git status should show.
func TestReleaseSeesUntrackedFilesWhateverTheConfig(t *testing.T) {
	repo := fakeRepo(t)
	if _, err := git(repo, "config", "status.showUntrackedFiles", "no"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "cron", "new.go"), []byte("package cron\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := release(repo, "v0.2.0", false, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "new.go") {
		t.Errorf("an untracked file hidden by status.showUntrackedFiles=no: got %v, want an error naming it", err)
	}
	if tags, _ := git(repo, "tag", "--list"); tags != "v0.1.0" {
		t.Errorf("a refused release tagged:\n%s", tags)
	}
}
