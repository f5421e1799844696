package volume_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/skiffhq/skiff/volume"
)

// TestUsageOfMountedFileSystems: a directory volume with file systems
// mounted on it and inside it (a backing service's data disk, and
// PostgreSQL's WAL disk in that) takes what they all hold, of their sizes
// added up; their files are not walked.
func TestUsageOfMountedFileSystems(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mount")
	}
	ctx := context.Background()
	s, err := volume.New(volume.Config{Dir: filepath.Join(t.TempDir(), "volumes"), Directories: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ensure(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	dir, _ := s.Path(id)
	wal := filepath.Join(dir, "wal")
	mount := func(at, size string) {
		t.Helper()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", at).CombinedOutput(); err != nil {
			t.Fatalf("mount: %v %s", err, out)
		}
		t.Cleanup(func() { syscall.Unmount(at, syscall.MNT_DETACH) })
	}
	mount(dir, "64m")
	if err := os.Mkdir(wal, 0o700); err != nil {
		t.Fatal(err)
	}
	mount(wal, "32m")
	for path, size := range map[string]int{filepath.Join(dir, "data"): 4 << 20, filepath.Join(wal, "000001"): 2 << 20} {
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.Usage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if u.UsedBytes < 6<<20 || u.UsedBytes > 7<<20 || u.SizeBytes != 96<<20 {
		t.Errorf("usage %+v: want the 6 MiB of both file systems, of 96 MiB", u)
	}
}
