package services

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/skiffhq/skiff"
)

// A service's volume is a file system of its own: an ext4 image of the
// service's disk size (sparse: it takes what the data takes), loop-mounted
// on the volume's directory. A server that fills it gets ENOSPC, a clear
// error to its clients, and nothing else on the host runs out of space.

// DefaultDisk is a service's disk unless --disk says otherwise.
const DefaultDisk = 8 << 30

// MinDisk leaves room for PostgreSQL's cluster (about 40 MiB) and its WAL.
const MinDisk = 128 << 20

func (m *Manager) diskImage(svc *skiff.Service) string {
	return filepath.Join(m.cfg.DataDir, "disks", svc.ID+".img")
}

// makeDisk creates the service's disk image and its file system.
func (m *Manager) makeDisk(ctx context.Context, svc *skiff.Service) error {
	if err := os.MkdirAll(filepath.Join(m.cfg.DataDir, "disks"), 0o700); err != nil {
		return err
	}
	img := m.diskImage(svc)
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(svc.DiskBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// No reserved blocks (no root runs inside), lazy init (a sparse
	// image stays small), a journal (a crash of the host leaves it whole).
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", "-L", "skiff-"+svc.ID[:min(10, len(svc.ID))], img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 for %s: %v: %s", svc.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountDisk mounts the service's disk on its volume's directory unless it
// is mounted already (after a daemon restart it is; after a reboot not).
func (m *Manager) mountDisk(ctx context.Context, svc *skiff.Service) error {
	img := m.diskImage(svc)
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		return nil // a service made before disks had sizes: a plain directory
	}
	dir := m.volume(svc)
	if mounted(dir) {
		return nil
	}
	if err := m.cfg.Volumes.Ensure(ctx, svc.Volume, 0); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", "-o", "loop,nosuid,nodev", img, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount the disk of %s: %v: %s", svc.Name, err, strings.TrimSpace(string(out)))
	}
	// The file system's root is the volume: the server's, 0700.
	uid, gid, err := m.hostIDs(svc)
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return os.Chown(dir, uid, gid)
}

// unmountDisk unmounts the service's disk (its loop device goes with it).
func (m *Manager) unmountDisk(svc *skiff.Service) error {
	return unmountAll(m.volume(svc))
}

func unmountAll(dir string) error {
	for mounted(dir) {
		if err := syscall.Unmount(dir, 0); err != nil {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", dir, err)
			}
		}
	}
	return nil
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// TeardownDisks unmounts every service disk below volumesDir (skiff
// teardown: the daemon is stopped, and the loop devices must not outlive
// it). The images stay in the data directory.
func TeardownDisks(volumesDir string) error {
	ents, err := os.ReadDir(volumesDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, unmountAll(filepath.Join(volumesDir, e.Name())))
	}
	return errors.Join(errs...)
}
