package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Names inside a bundle.
const (
	bundleRootfs = "rootfs"  // the overlay mount point
	bundleUpper  = "upperfs" // tmpfs (or plain dir) holding upper/ and work/
)

// prepareRootfs mounts the container's root file system and returns its
// path. For a directory rootfs it is the directory itself.
func (r *Runc) prepareRootfs(s *Spec) (string, error) {
	if s.Rootfs.Dir != "" {
		if len(s.Rootfs.Layers) > 0 {
			return "", errors.New("rootfs: both a directory and layers")
		}
		if err := checkSystemDirs(s.Rootfs.Dir, false); err != nil {
			return "", err
		}
		return s.Rootfs.Dir, nil
	}
	if len(s.Rootfs.Layers) == 0 {
		return "", errors.New("rootfs: no directory and no layers")
	}
	owner := 0
	if s.UserNS {
		owner = int(r.cfg.IDMap.HostID)
	}
	upperfs := filepath.Join(s.Bundle, bundleUpper)
	rootfs := filepath.Join(s.Bundle, bundleRootfs)
	for _, d := range []string{upperfs, rootfs} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	if s.Rootfs.UpperSize > 0 {
		opts := fmt.Sprintf("size=%d,mode=0700", s.Rootfs.UpperSize)
		if err := unix.Mount("tmpfs", upperfs, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return "", fmt.Errorf("mount upper tmpfs: %w", err)
		}
	}
	upper, work := filepath.Join(upperfs, "upper"), filepath.Join(upperfs, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", err
		}
		if err := os.Chown(d, owner, owner); err != nil {
			return "", err
		}
	}
	// The directories are named by descriptor (/proc/self/fd/N): the
	// container's /proc/self/mountinfo shows the overlay's options as
	// given, and so names no path of the host's (not the data directory).
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	byFD := func(dir string) (string, error) {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("rootfs: %s: %w", dir, err)
		}
		fds = append(fds, fd)
		return fmt.Sprintf("/proc/self/fd/%d", fd), nil
	}
	lower := make([]string, len(s.Rootfs.Layers))
	for i, l := range s.Rootfs.Layers {
		if strings.ContainsAny(l, ":,") {
			return "", fmt.Errorf("layer path %q has a ':' or ','", l)
		}
		p, err := byFD(l)
		if err != nil {
			return "", err
		}
		lower[len(lower)-1-i] = p // overlay lists the top layer first
	}
	upperFD, err := byFD(upper)
	if err != nil {
		return "", err
	}
	workFD, err := byFD(work)
	if err != nil {
		return "", err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), upperFD, workFD)
	if len(opts) >= os.Getpagesize()-1 {
		return "", fmt.Errorf("rootfs: %d layers make an overlay option of %d bytes, over the kernel's %d", len(lower), len(opts), os.Getpagesize())
	}
	// nosuid: a setuid file that slipped into a layer gains nothing.
	if err := unix.Mount("overlay", rootfs, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return "", fmt.Errorf("mount overlay: %w", err)
	}
	if err := os.Chmod(rootfs, 0o755); err != nil {
		return "", err
	}
	if err := checkSystemDirs(rootfs, true); err != nil {
		return "", err
	}
	if err := makeLinks(rootfs, s.Links, owner); err != nil {
		return "", err
	}
	return rootfs, nil
}

// makeLinks makes the spec's top-level symlinks in a layered root, where
// the image has no entry of that name; an existing entry is left alone,
// and nothing is followed.
func makeLinks(rootfs string, links map[string]string, owner int) error {
	for name, target := range links {
		base := strings.TrimPrefix(name, "/")
		if base == "" || strings.ContainsAny(base, "/\x00") || base == "." || base == ".." || target == "" || strings.ContainsRune(target, 0) {
			return fmt.Errorf("rootfs: bad link %q -> %q", name, target)
		}
		p := filepath.Join(rootfs, base)
		if _, err := os.Lstat(p); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("rootfs: link /%s: %w", base, err)
		}
		if err := os.Lchown(p, owner, owner); err != nil {
			return err
		}
	}
	return nil
}

// chownMounts hands the Owned mounts' directories to the container's
// process user, mapped to the host's ids. The source must be a real
// directory: a symlink in its place is refused, not followed.
func (r *Runc) chownMounts(s *Spec) error {
	uid, gid := int(s.UID), int(s.GID)
	if s.UserNS {
		uid += int(r.cfg.IDMap.HostID)
		gid += int(r.cfg.IDMap.HostID)
	}
	for _, m := range s.Mounts {
		if !m.Owned {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(m.Source, &st); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("mount %s: %s is not a directory", m.Destination, m.Source)
		}
		if int(st.Uid) != uid || int(st.Gid) != gid {
			if err := unix.Lchown(m.Source, uid, gid); err != nil {
				return fmt.Errorf("mount %s: %w", m.Destination, err)
			}
		}
	}
	return nil
}

// checkSystemDirs makes sure /dev, /proc and /sys are real directories, so
// that an image shipping them as symlinks cannot redirect the mounts runc
// makes there. In a writable (overlay) root they are replaced, in the upper
// layer only; a read-only directory root with them wrong is refused.
func checkSystemDirs(root string, fix bool) error {
	for _, d := range []string{"dev", "proc", "sys"} {
		p := filepath.Join(root, d)
		fi, err := os.Lstat(p)
		if err == nil && fi.IsDir() {
			continue
		}
		if !fix {
			if err == nil || !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("rootfs: /%s is not a directory", d)
			}
			continue // runc creates it
		}
		if err == nil {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("rootfs: replace /%s: %w", d, err)
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("rootfs: make /%s: %w", d, err)
		}
	}
	return nil
}

// releaseRootfs unmounts what prepareRootfs mounted in bundle and removes
// the mount points. It is idempotent.
func releaseRootfs(bundle string) error {
	var errs []error
	for _, d := range []string{bundleRootfs, bundleUpper} {
		p := filepath.Join(bundle, d)
		for {
			err := unix.Unmount(p, unix.MNT_DETACH)
			if err == unix.EINVAL || err == unix.ENOENT {
				break // not (or no longer) a mount point
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
				break
			}
		}
	}
	// Only now, with nothing mounted, is removing the upper dir safe.
	if err := os.RemoveAll(filepath.Join(bundle, bundleUpper)); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(filepath.Join(bundle, bundleRootfs)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
