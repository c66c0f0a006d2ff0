package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeAtomic replaces dir/name with content: a temporary file in the same directory,
// synced, then renamed over the old one, so a reader sees the old or the new file, whole.
func writeAtomic(dir, name string, content string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: refusing file name %q", name)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-")
	if err != nil {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: cannot write into %s (%v); is the nemutator-bin volume mounted there?", dir, unwrapPathError(err))
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: writing %s failed (%v)", name, unwrapPathError(err))
	}
	if err := tmp.Chmod(0o444); err != nil {
		tmp.Close()
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: chmod of %s failed (%v)", name, unwrapPathError(err))
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: sync of %s failed (%v)", name, unwrapPathError(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: closing %s failed (%v)", name, unwrapPathError(err))
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: replacing %s failed (%v)", name, unwrapPathError(err))
	}
	ok = true
	return nil
}

// renderFiles writes every file and returns the (path, version) pairs to acknowledge.
func renderFiles(dir string, files map[string]Secret) (map[string]int64, error) {
	if len(files) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("NEMU_ERR_LAUNCHER_FILE: cannot create %s (%v)", dir, unwrapPathError(err))
	}
	acks := map[string]int64{}
	for name, s := range files {
		if err := writeAtomic(dir, name, s.Value); err != nil {
			return nil, err
		}
		if s.Path != "" && s.Version > acks[s.Path] {
			acks[s.Path] = s.Version
		}
	}
	return acks, nil
}
