package volume_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiffhq/skiff/volume"
)

const id = "vol-0123456789abcdef"

func TestDirectoryVolumes(t *testing.T) {
	ctx := context.Background()
	parent := filepath.Join(t.TempDir(), "volumes")
	s, err := volume.New(volume.Config{Dir: parent, Directories: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Degraded() == "" {
		t.Fatal("directories are not reported as degraded")
	}
	if fi, _ := os.Stat(parent); fi.Mode().Perm() != 0o711 {
		t.Errorf("parent mode %v", fi.Mode())
	}
	for _, bad := range []string{"", "..", "../x", "vol-1", "vol-0123456789abcdef/..", "/etc"} {
		if err := s.Ensure(ctx, bad, 0); err == nil {
			t.Errorf("Ensure(%q) worked", bad)
		}
		if _, err := s.Path(bad); err == nil {
			t.Errorf("Path(%q) worked", bad)
		}
	}
	for range 2 { // idempotent
		if err := s.Ensure(ctx, id, 1<<30); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := s.Path(id)
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
	// A file system mounted inside (a service's WAL disk in its data
	// disk) is not the volume's: 4 MiB on it do not count.
	if os.Geteuid() == 0 {
		inner := filepath.Join(p, "wal")
		os.Mkdir(inner, 0o700)
		if err := syscall.Mount("tmpfs", inner, "tmpfs", 0, "size=8m"); err != nil {
			t.Fatal(err)
		}
		defer syscall.Unmount(inner, syscall.MNT_DETACH)
		os.WriteFile(filepath.Join(inner, "wal"), make([]byte, 4<<20), 0o600)
	}
	u, err := s.Usage(ctx, id)
	if err != nil || u.UsedBytes < 1<<20 || u.UsedBytes > 2<<20 || u.SizeBytes != 0 {
		t.Fatalf("usage %+v, %v; want about 1 MiB and no size", u, err)
	}
	syscall.Unmount(filepath.Join(p, "wal"), syscall.MNT_DETACH)
	if err := s.Resize(ctx, id, 2<<30); err == nil {
		t.Fatal("a directory volume was resized")
	}
	if err := s.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("volume still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "big")); err != nil {
		t.Fatalf("removing the volume followed its symlink: %v", err)
	}
	if _, err := s.Usage(ctx, id); err == nil {
		t.Fatal("usage of a removed volume")
	}
}

// TestImageVolumes: a volume is an ext4 file system of its size, allocated
// on the host's disk; writes past the size fail; it survives an unmount (a
// reboot, teardown) and comes back with MountAll; it grows online; removed,
// it leaves no mount, loop device or file.
func TestImageVolumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop devices and mount")
	}
	ctx := context.Background()
	parent := filepath.Join(t.TempDir(), "volumes")
	s, err := volume.New(volume.Config{Dir: parent})
	if err != nil {
		t.Fatal(err)
	}
	if why := s.Degraded(); why != "" {
		t.Skipf("no image volumes here: %s", why)
	}
	t.Cleanup(func() { volume.UnmountAll(parent) })
	if err := s.Ensure(ctx, id, 8<<20); err == nil || !strings.Contains(err.Error(), "at least 16 MiB") {
		t.Fatalf("a volume below the minimum: %v", err)
	}
	if err := s.Ensure(ctx, id, 32<<20); err != nil {
		t.Fatal(err)
	}
	dir, _ := s.Path(id)
	img := filepath.Join(parent, id+".img")
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil || st.Blocks*512 < 32<<20 {
		t.Fatalf("the image is not allocated in full: %d bytes, %v", st.Blocks*512, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a new volume holds %v", ents)
	}
	if err := os.WriteFile(filepath.Join(dir, "small"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(dir, "big"), make([]byte, 40<<20), 0o600)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing past the size: %v", err)
	}
	os.Remove(filepath.Join(dir, "big"))
	u, err := s.Usage(ctx, id)
	if err != nil || u.SizeBytes < 20<<20 || u.SizeBytes > 32<<20 || u.UsedBytes <= 0 || u.UsedBytes > 8<<20 {
		t.Fatalf("usage %+v %v", u, err)
	}
	// As after a reboot: not mounted, no path; MountAll brings it back.
	if err := volume.UnmountAll(parent); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Path(id); err == nil {
		t.Fatal("an unmounted image volume has a path")
	}
	s.MountAll(ctx)
	if b, err := os.ReadFile(filepath.Join(dir, "small")); err != nil || string(b) != "kept" {
		t.Fatalf("after the remount: %q %v", b, err)
	}
	if err := s.Resize(ctx, id, 16<<20); err == nil {
		t.Fatal("a volume shrank")
	}
	if !volume.CanGrow() {
		if err := s.Resize(ctx, id, 64<<20); err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
			t.Fatalf("growing without CAP_SYS_RESOURCE: %v", err)
		}
		t.Log("no CAP_SYS_RESOURCE here: online growth not tested")
	} else {
		if err := s.Resize(ctx, id, 64<<20); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.Usage(ctx, id); u.SizeBytes < 48<<20 {
			t.Fatalf("after growing to 64 MiB: %+v", u)
		}
		if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 40<<20), 0o600); err != nil {
			t.Fatalf("40 MiB in the grown volume: %v", err)
		}
	}
	if err := s.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, img} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left: %v", p, err)
		}
	}
	if out, _ := exec.Command("losetup", "-a").Output(); strings.Contains(string(out), img) {
		t.Errorf("a loop device is left: %s", out)
	}
}
