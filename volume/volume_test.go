package volume_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/skiffhq/skiff/volume"
)

func TestDirs(t *testing.T) {
	ctx := context.Background()
	parent := filepath.Join(t.TempDir(), "volumes")
	d, err := volume.New(parent)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(parent); fi.Mode().Perm() != 0o711 {
		t.Errorf("parent mode %v", fi.Mode())
	}
	for _, bad := range []string{"", "..", "../x", "vol-1", "vol-0123456789abcdef/..", "/etc"} {
		if err := d.Ensure(ctx, bad); err == nil {
			t.Errorf("Ensure(%q) worked", bad)
		}
		if _, err := d.Path(bad); err == nil {
			t.Errorf("Path(%q) worked", bad)
		}
	}
	id := "vol-0123456789abcdef"
	for range 2 { // idempotent
		if err := d.Ensure(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := d.Path(id)
	if fi, _ := os.Stat(p); !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("volume dir %v", fi.Mode())
	}
	data := make([]byte, 1<<20)
	os.WriteFile(filepath.Join(p, "a"), data, 0o600)
	os.Link(filepath.Join(p, "a"), filepath.Join(p, "b")) // counted once
	// A symlink out of the volume is not followed: a big file outside
	// neither counts nor goes away with the volume.
	outside := filepath.Join(t.TempDir(), "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "big"), make([]byte, 4<<20), 0o600)
	os.Symlink(outside, filepath.Join(p, "escape"))
	n, err := d.Usage(ctx, id)
	if err != nil || n < 1<<20 || n > 2<<20 {
		t.Fatalf("usage %d, %v; want about 1 MiB", n, err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("volume still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "big")); err != nil {
		t.Fatalf("removing the volume followed its symlink: %v", err)
	}
	if _, err := d.Usage(ctx, id); err == nil {
		t.Fatal("usage of a removed volume")
	}
}
