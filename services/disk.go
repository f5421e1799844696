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
//
// PostgreSQL's WAL has a file system of its own besides, mounted on the
// volume's wal/ directory: PostgreSQL survives a full data disk (the
// statement that fills it fails, the server goes on) but not a WAL it
// cannot write (it PANICs, and its crash recovery needs WAL room of its
// own, so on a disk the data filled it stays down). With the WAL apart,
// filling the data disk is an error for the transaction that does;
// max_wal_size (kinds.go) keeps the WAL well inside its own disk.

// DefaultDisk is a service's disk unless --disk says otherwise.
const DefaultDisk = 8 << 30

// MinDisk leaves room for PostgreSQL's cluster (about 40 MiB) and more.
const MinDisk = 128 << 20

// walDisk is the size of a PostgreSQL service's WAL disk, besides its
// data disk of size disk: a quarter of it, within 256 MiB and 2 GiB.
// max_wal_size is a soft limit: while a checkpoint that falls behind runs,
// the WAL grows with what is written, about as much as the data written
// (more with full-page images). So a small data disk gets a WAL disk of
// more than its own size, and a transaction that fills the data disk
// fills it first; on a large one checkpoints, started each eighth of the
// WAL disk (kinds.go), keep the WAL far below it.
func walDisk(disk int64) int64 { return min(max(disk/4, 256<<20), 2<<30) }

// disksSize is what a service's disks take of the server's storage
// budget: its disk, and a PostgreSQL service's WAL disk besides.
func disksSize(kind string, disk int64) int64 {
	if kind == skiff.ServicePostgres {
		return disk + walDisk(disk)
	}
	return disk
}

func (m *Manager) diskImage(svc *skiff.Service) string {
	return filepath.Join(m.cfg.DataDir, "disks", svc.ID+".img")
}

func (m *Manager) walImage(svc *skiff.Service) string {
	return filepath.Join(m.cfg.DataDir, "disks", svc.ID+"-wal.img")
}

// walDir is where the WAL disk is mounted, in the volume (walPath inside
// the container).
func (m *Manager) walDir(svc *skiff.Service) string { return filepath.Join(m.volume(svc), "wal") }

const walPath = dataDir + "/wal/pg_wal"

// makeDisk creates the service's disk image and its file system, and a
// PostgreSQL service's WAL disk.
func (m *Manager) makeDisk(ctx context.Context, svc *skiff.Service) error {
	if err := os.MkdirAll(filepath.Join(m.cfg.DataDir, "disks"), 0o700); err != nil {
		return err
	}
	label := "skiff-" + svc.ID[:min(10, len(svc.ID))]
	if err := makeFS(ctx, svc, m.diskImage(svc), svc.DiskBytes, label); err != nil {
		return err
	}
	if svc.Kind != skiff.ServicePostgres {
		return nil
	}
	return makeFS(ctx, svc, m.walImage(svc), walDisk(svc.DiskBytes), label[:min(11, len(label))]+"-wal")
}

func makeFS(ctx context.Context, svc *skiff.Service, img string, size int64, label string) error {
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// No reserved blocks (no root runs inside), lazy init (a sparse
	// image stays small), a journal (a crash of the host leaves it whole).
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", "-L", label, img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 for %s: %v: %s", svc.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountDisk mounts the service's disk on its volume's directory, and its
// WAL disk on the volume's wal/, each unless it is mounted already (after
// a daemon restart they are; after a reboot not).
func (m *Manager) mountDisk(ctx context.Context, svc *skiff.Service) error {
	img := m.diskImage(svc)
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		return nil // a service made before disks had sizes: a plain directory
	}
	if err := m.cfg.Volumes.Ensure(ctx, svc.Volume, 0); err != nil {
		return err
	}
	if err := m.mountOwned(ctx, svc, img, m.volume(svc)); err != nil {
		return err
	}
	wal := m.walImage(svc)
	if _, err := os.Stat(wal); errors.Is(err, os.ErrNotExist) {
		return nil // redis, or a PostgreSQL service made before WAL disks
	}
	if err := os.Mkdir(m.walDir(svc), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return m.mountOwned(ctx, svc, wal, m.walDir(svc))
}

// mountOwned mounts the file system in img on dir, whose root then belongs
// to the service's server (0700).
func (m *Manager) mountOwned(ctx context.Context, svc *skiff.Service, img, dir string) error {
	if mounted(dir) {
		return nil
	}
	out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", "-o", "loop,nosuid,nodev", img, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount the disk of %s: %v: %s", svc.Name, err, strings.TrimSpace(string(out)))
	}
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
	return unmountVolume(m.volume(svc))
}

// unmountVolume unmounts a service's WAL disk, if it has one, and then its
// disk.
func unmountVolume(dir string) error {
	if err := unmountAll(filepath.Join(dir, "wal")); err != nil {
		return err
	}
	return unmountAll(dir)
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
		errs = append(errs, unmountVolume(filepath.Join(volumesDir, e.Name())))
	}
	return errors.Join(errs...)
}
