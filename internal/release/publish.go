package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// publish writes version v of the public modules found under root to dir, in
// the layout of a module proxy (see "go help goproxy"), so that
// GOPROXY=file://dir serves them.
func publish(root string, mods []repoModule, v, dir string) error {
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{v, time.Now().UTC()})
	if err != nil {
		return err
	}
	for _, m := range mods {
		if !m.Public {
			continue
		}
		escaped, err := module.EscapePath(m.Path)
		if err != nil {
			return err
		}
		at := filepath.Join(dir, filepath.FromSlash(escaped), "@v")
		if err := os.MkdirAll(at, 0o755); err != nil {
			return err
		}
		src := filepath.Join(root, filepath.FromSlash(m.Dir))
		mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
		if err != nil {
			return err
		}
		z, err := os.Create(filepath.Join(at, v+".zip"))
		if err != nil {
			return err
		}
		err = zip.CreateFromDir(z, module.Version{Path: m.Path, Version: v}, src)
		if cerr := z.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		for name, data := range map[string][]byte{"list": []byte(v + "\n"), v + ".info": info, v + ".mod": mod} {
			if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
