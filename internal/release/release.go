// Command release tags a version of every module of this repository.
//
// The modules are released together, at one version. Each module that
// requires another of the repository's modules requires it at the version
// being released: the one it was built and tested with. For development the
// go.mod files also replace those modules with their directories in this
// repository, which a consumer's build ignores.
//
// Usage, from anywhere in a clean clone:
//
//	scripts/release [-n] vX.Y.Z
//
// It refuses a working tree with changes (untracked files included), a
// major version above v1, which the module paths would need as a suffix,
// and a version that is not greater than every version already tagged of a
// module it tags, all before it changes anything; it then sets the require
// lines, commits them, and tags the root module vX.Y.Z and each other
// public module <dir>/vX.Y.Z. It pushes nothing: it prints the command that
// does. With -n it only says what it would do.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// rootPath is the root module's path; every module of the repository is
// under it.
const rootPath = "github.com/backi-go/backi"

// A repoModule is one go.mod of the repository.
type repoModule struct {
	Dir  string // relative to the repository's root, with slashes; "." for the root
	Path string
	// Public modules are the ones users import: they are tagged and
	// published. Benchmarks, examples and internal tools are not.
	Public bool
}

// Tag is the git tag of the module's version v.
func (m repoModule) Tag(v string) string {
	if m.Dir == "." {
		return v
	}
	return m.Dir + "/" + v
}

func main() {
	dry := flag.Bool("n", false, "say what would be done, and do nothing")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: scripts/release [-n] vX.Y.Z")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := release(".", flag.Arg(0), *dry, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// release releases version v of the repository that holds dir.
func release(dir, v string, dry bool, out io.Writer) error {
	if !semver.IsValid(v) || semver.Canonical(v) != v || semver.Build(v) != "" {
		return fmt.Errorf("version %q is not of the form vX.Y.Z (or vX.Y.Z-pre)", v)
	}
	root, err := git(dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	// Untracked files are listed whatever status.showUntrackedFiles says.
	if changes, err := git(root, "status", "--porcelain", "--untracked-files=all"); err != nil {
		return err
	} else if changes != "" {
		return fmt.Errorf("the working tree has changes; commit or stash them first:\n%s", changes)
	}
	mods, err := modules(root)
	if err != nil {
		return err
	}
	for _, m := range mods {
		if _, major, ok := module.SplitPathVersion(m.Path); !ok || module.CheckPathMajor(v, major) != nil {
			return fmt.Errorf("version %s does not fit module %s: a major version above v1 needs its suffix in the module path", v, m.Path)
		}
	}
	tags, err := git(root, "tag", "--list")
	if err != nil {
		return err
	}
	for _, t := range strings.Fields(tags) {
		for _, m := range mods {
			if !m.Public {
				continue
			}
			prefix := m.Tag("") // "" for the root, "dir/" for another
			if rest, ok := strings.CutPrefix(t, prefix); ok && !strings.Contains(rest, "/") &&
				semver.IsValid(rest) && semver.Compare(rest, v) >= 0 {
				return fmt.Errorf("version %s is not greater than %s, already tagged", v, t)
			}
		}
	}
	changed, err := requireVersion(root, mods, v, dry)
	if err != nil {
		return err
	}
	var tagged []string
	for _, m := range mods {
		if m.Public {
			tagged = append(tagged, m.Tag(v))
		}
	}
	if dry {
		if len(changed) == 0 {
			fmt.Fprintf(out, "the require lines are at %s already; would tag %s\n", v, strings.Join(tagged, " "))
		} else {
			fmt.Fprintf(out, "would set the require lines of %s to %s, commit, and tag %s\n", strings.Join(changed, ", "), v, strings.Join(tagged, " "))
		}
		return nil
	}
	if len(changed) > 0 {
		if _, err := git(root, "commit", "-q", "-am", "Release "+v+": the modules require each other at "+v); err != nil {
			return err
		}
	}
	for _, t := range tagged {
		if _, err := git(root, "tag", t); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "tagged %s\npublish with: git push origin HEAD %s\n", strings.Join(tagged, " "), strings.Join(tagged, " "))
	return nil
}

// modules finds the repository's go.mod files, the root's first.
func modules(root string) ([]repoModule, error) {
	var mods []repoModule
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mp := modfile.ModulePath(data)
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if want := path.Join(rootPath, rel); mp != want {
			return fmt.Errorf("%s: module path %q, want %q (the directory's)", p, mp, want)
		}
		top, _, _ := strings.Cut(rel, "/")
		public := top != "internal" && top != "examples" && top != "bench"
		mods = append(mods, repoModule{Dir: rel, Path: mp, Public: public})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(mods, func(a, b repoModule) int { return strings.Compare(a.Path, b.Path) })
	if len(mods) == 0 || mods[0].Dir != "." {
		return nil, errors.New("no go.mod at the repository's root")
	}
	return mods, nil
}

// requireVersion makes every module that requires another module of the
// repository require it at v, and returns the go.mod files it changed (or,
// with dry, would change).
func requireVersion(root string, mods []repoModule, v string, dry bool) (changed []string, err error) {
	ours := make(map[string]bool)
	for _, m := range mods {
		ours[m.Path] = true
	}
	for _, m := range mods {
		file := filepath.Join(root, m.Dir, "go.mod")
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		f, err := modfile.Parse(file, data, nil)
		if err != nil {
			return nil, err
		}
		bumped := false
		for _, r := range f.Require {
			if ours[r.Mod.Path] && r.Mod.Version != v {
				if err := f.AddRequire(r.Mod.Path, v); err != nil {
					return nil, err
				}
				bumped = true
			}
		}
		if !bumped {
			continue
		}
		changed = append(changed, path.Join(m.Dir, "go.mod"))
		if dry {
			continue
		}
		f.Cleanup()
		out, err := f.Format()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(file, out, 0o644); err != nil {
			return nil, err
		}
	}
	return changed, nil
}

// git runs git in dir and returns its output, trimmed.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(string(out), "\n"), nil
}
