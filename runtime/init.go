package runtime

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// installInit copies the init program (cmd/skiff-init) to
// DATA/runtime/skiff-init, and returns that path. Every container
// bind-mounts it, as its mapped root, which can traverse the data directory
// (instances live there) but perhaps not the directory skiff was installed
// in. A newer copy replaces the file by rename: running instances keep the
// one they mounted.
func installInit(src, dataDir string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("init program: %w", err)
	}
	if len(b) < 4 || string(b[:4]) != "\x7fELF" {
		return "", fmt.Errorf("init program %s is not an executable", src)
	}
	dir := filepath.Join(dataDir, "runtime")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "skiff-init")
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
		return dst, nil
	}
	tmp, err := os.CreateTemp(dir, ".skiff-init-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o555)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return "", fmt.Errorf("install init program: %w", err)
	}
	return dst, nil
}
