package nodejs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// copyTree copies a tree's directories, files and symbolic links; linkTree
// does the same with its files hard-linked.
func TestCopyAndLinkTree(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "lib", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "lib", "deep", "f.js"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("deep/f.js", filepath.Join(src, "lib", "l.js")); err != nil {
		t.Fatal(err)
	}
	inode := func(path string) uint64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	for name, tc := range map[string]struct {
		walk   func(src, dst string) error
		linked bool
	}{"copyTree": {copyTree, false}, "linkTree": {linkTree, true}} {
		dst := filepath.Join(t.TempDir(), "out")
		if err := tc.walk(src, dst); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := os.ReadFile(filepath.Join(dst, "lib", "l.js")) // through the link
		if err != nil || string(data) != "x" {
			t.Errorf("%s: the linked file: %q %v", name, data, err)
		}
		if to, err := os.Readlink(filepath.Join(dst, "lib", "l.js")); err != nil || to != "deep/f.js" {
			t.Errorf("%s: the symbolic link: %q %v", name, to, err)
		}
		if fi, err := os.Stat(filepath.Join(dst, "lib", "deep", "f.js")); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: the file's mode: %v %v", name, fi, err)
		}
		if same := inode(filepath.Join(dst, "lib", "deep", "f.js")) == inode(filepath.Join(src, "lib", "deep", "f.js")); same != tc.linked {
			t.Errorf("%s: the file is hard-linked: %v, want %v", name, same, tc.linked)
		}
	}
}
