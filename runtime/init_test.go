package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInstallInit(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "skiff-init")
	os.WriteFile(src, []byte("\x7fELF one"), 0o700)
	data := filepath.Join(dir, "data")
	dst, err := installInit(src, data)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("installed %v %v", fi, err)
	}
	// A running instance keeps the file it mounted: a new program
	// replaces the name, not the contents.
	old, _ := os.Open(dst)
	defer old.Close()
	os.WriteFile(src, []byte("\x7fELF two"), 0o700)
	if _, err := installInit(src, data); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "\x7fELF two" {
		t.Fatalf("not replaced: %q", b)
	}
	b := make([]byte, 16)
	n, _ := old.ReadAt(b, 0)
	if string(b[:n]) != "\x7fELF one" {
		t.Fatalf("the old copy changed: %q", b[:n])
	}
	os.WriteFile(src, []byte("#!/bin/sh\n"), 0o700)
	if _, err := installInit(src, data); err == nil {
		t.Fatal("a script was installed as the init program")
	}
	if ents, _ := os.ReadDir(filepath.Join(data, "runtime")); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
