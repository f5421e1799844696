// Package volume keeps persistent storage on the local disk, under
// DATA/volumes, for the runtime to bind-mount into the containers a volume
// is given to (the runtime hands the volume's root to the container's user
// at each start).
//
// Each volume is a file system of its own: an ext4 image of the volume's
// size, allocated in full on the host's disk (so the sizes are a budget
// the disk really holds, and a full host disk never surprises a volume),
// loop-mounted at its directory. A volume cannot outgrow its size (writes
// past it get ENOSPC), its disk use is the file system's, and a container's
// /proc/self/mountinfo shows the volume's own root, not a host path. Where
// the host has no loop devices or no mkfs.ext4 (a server that is itself a
// container), volumes are plain directories without a size limit, and New
// says so; their use is measured by walking them.
//
// Nothing here follows a symlink a tenant made: the walk uses lstat and
// removal never leaves the volume.
//
//	volumes/<volume-id>.img   the ext4 image (image volumes)
//	volumes/<volume-id>/      its mount point, or the directory itself
package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff"
)

// Config configures a Store.
type Config struct {
	Dir string // DATA/volumes
	Log *slog.Logger
	// Directories makes new volumes plain directories even where images
	// work (tests of the fallback).
	Directories bool
}

// Store implements skiff.Volumes.
type Store struct {
	dir    string
	log    *slog.Logger
	images bool   // new volumes are images
	why    string // why not, when not
	mu     sync.Mutex
}

var _ skiff.Volumes = (*Store)(nil)

// New returns the volumes under cfg.Dir, making it if needed: 0711, so
// that containers' mapped users reach their own volume but can list no
// other.
func New(cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(cfg.Dir, 0o711); err != nil {
		return nil, err
	}
	s := &Store{dir: cfg.Dir, log: cfg.Log}
	switch {
	case cfg.Directories:
		s.why = "configured so"
	case os.Geteuid() != 0:
		s.why = "not root"
	default:
		s.why = imageSupport()
	}
	s.images = s.why == ""
	if !s.images && !cfg.Directories {
		cfg.Log.Warn("storage is plain directories: volumes have no size limit", "why", s.why)
	}
	return s, nil
}

// Degraded says why volumes are directories without a size limit; "" when
// they are file systems of their own.
func (s *Store) Degraded() string { return s.why }

var idRE = regexp.MustCompile(`^vol-[0-9a-f]{16}$`)

func (s *Store) paths(id string) (dir, img string, err error) {
	if !idRE.MatchString(id) {
		return "", "", fmt.Errorf("invalid volume id %q", id)
	}
	return filepath.Join(s.dir, id), filepath.Join(s.dir, id+".img"), nil
}

// Path implements skiff.Volumes. An image volume that is not mounted has
// no path: a container must never get the empty mount point instead.
func (s *Store) Path(id string) (string, error) {
	dir, img, err := s.paths(id)
	if err == nil && isImage(img) && !mounted(dir) {
		return "", fmt.Errorf("volume %s is not mounted", id)
	}
	return dir, err
}

// MountAll mounts every image volume that is not (after a reboot), each
// checked first; it runs before any container that may mount one starts.
// A volume that cannot be mounted is logged, and its containers refuse to
// start.
func (s *Store) MountAll(ctx context.Context) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		s.log.Error("list volumes", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".img")
		if !ok || !idRE.MatchString(id) {
			continue
		}
		dir, img, _ := s.paths(id)
		if mounted(dir) {
			continue
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			s.log.Error("mount volume", "id", id, "err", err)
			continue
		}
		if err := mountImage(ctx, img, dir, true); err != nil {
			s.log.Error("mount volume", "id", id, "err", err)
		}
	}
}

// isImage reports whether the volume is an image volume.
func isImage(img string) bool {
	_, err := os.Lstat(img)
	return err == nil
}

// Ensure implements skiff.Volumes: a new volume is made (an image of size
// bytes where images work, else a directory); an image volume that is not
// mounted (after a reboot) is checked and mounted again.
func (s *Store) Ensure(ctx context.Context, id string, size int64) error {
	dir, img, err := s.paths(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh := false
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		fresh = true
		if s.images && size > 0 {
			if err := makeImage(ctx, img, size); err != nil {
				os.Remove(dir)
				return err
			}
		}
	} else if err != nil {
		return err
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("volume %s: %s is not a directory", id, dir)
	}
	if !isImage(img) {
		return nil
	}
	if mounted(dir) {
		return nil
	}
	if err := mountImage(ctx, img, dir, !fresh); err != nil {
		if fresh {
			os.Remove(img)
			os.Remove(dir)
		}
		return err
	}
	if fresh {
		// The new file system's root is the volume: no lost+found in the
		// app's view, and nobody's until a container's user gets it.
		os.Remove(filepath.Join(dir, "lost+found"))
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Usage implements skiff.Volumes.
func (s *Store) Usage(ctx context.Context, id string) (skiff.VolumeUsage, error) {
	dir, img, err := s.paths(id)
	if err != nil {
		return skiff.VolumeUsage{}, err
	}
	if isImage(img) {
		if !mounted(dir) {
			return skiff.VolumeUsage{}, skiff.Errorf(skiff.EUNAVAILABLE, "volume %s is not mounted on this server", id)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return skiff.VolumeUsage{}, err
		}
		bs := int64(st.Bsize)
		return skiff.VolumeUsage{UsedBytes: int64(st.Blocks-st.Bfree) * bs, SizeBytes: int64(st.Blocks) * bs}, nil //nolint:gosec // a volume's block counts are far below 2^63
	}
	if mounted(dir) {
		return mountsUsage(dir)
	}
	n, err := walkUsage(ctx, dir)
	return skiff.VolumeUsage{UsedBytes: n}, err
}

// mountsUsage is what the file systems mounted on a directory volume, and
// inside it, hold, and their sizes: a backing service's disks (its data
// disk on the volume, PostgreSQL's WAL disk inside that).
func mountsUsage(dir string) (skiff.VolumeUsage, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return skiff.VolumeUsage{}, err
	}
	var u skiff.VolumeUsage
	seen := map[string]bool{}
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		at := fields[4]
		if seen[at] || (at != dir && !strings.HasPrefix(at, dir+"/")) {
			continue
		}
		seen[at] = true
		var st unix.Statfs_t
		if err := unix.Statfs(at, &st); err != nil {
			return skiff.VolumeUsage{}, err
		}
		bs := int64(st.Bsize)
		u.UsedBytes += int64(st.Blocks-st.Bfree) * bs //nolint:gosec // a disk's block counts are far below 2^63
		u.SizeBytes += int64(st.Blocks) * bs          //nolint:gosec // as above
	}
	return u, nil
}

// walkUsage is the blocks a directory's files take, counting each
// hard-linked file once and staying on the directory's own file system, as
// du -x does.
func walkUsage(ctx context.Context, dir string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	var root syscall.Stat_t
	if err := syscall.Stat(dir, &root); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, skiff.Errorf(skiff.ENOTFOUND, "the directory of the volume is missing")
		}
		return 0, err
	}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil // removed while we walked
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Dev != root.Dev {
			if fi.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Nlink > 1 && !fi.IsDir() {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, skiff.Errorf(skiff.ENOTFOUND, "the directory of the volume is missing")
	}
	return total, err
}

// Resize implements skiff.Volumes: an image volume grows to size (it never
// shrinks); a directory volume has no size to change.
func (s *Store) Resize(ctx context.Context, id string, size int64) error {
	dir, img, err := s.paths(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !isImage(img) {
		return skiff.Errorf(skiff.EINVALID, "this volume is a plain directory (this server has no loop devices or mkfs.ext4): it has no size to change")
	}
	if !mounted(dir) {
		return skiff.Errorf(skiff.EUNAVAILABLE, "volume %s is not mounted on this server", id)
	}
	return growImage(ctx, img, dir, size)
}

// Remove implements skiff.Volumes.
func (s *Store) Remove(ctx context.Context, id string) error {
	dir, img, err := s.paths(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if isImage(img) {
		if err := unmount(dir); err != nil {
			return err
		}
		if err := os.Remove(img); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return os.Remove(dir)
	}
	return os.RemoveAll(dir)
}

// UnmountAll unmounts every image volume under dir (skiff teardown); the
// images and their files stay, and the next daemon mounts them again.
func UnmountAll(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if idRE.MatchString(e.Name()) && e.IsDir() {
			if err := unmount(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// command runs a tool with an explicit environment and returns its
// combined output in the error.
func command(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, bytesTrim(out))
	}
	return nil
}

func bytesTrim(b []byte) string {
	const max = 512
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
