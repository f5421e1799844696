package layer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"
)

// Choice is what MergeUpper does with one path of the merged tree.
type Choice int

const (
	// Drop removes the path from the lower directory and ignores what the
	// upper one has there.
	Drop Choice = iota
	// Keep merges the path and everything below it.
	Keep
	// Descend merges a directory's own attributes and asks about each of
	// its entries; for anything but a directory it is Keep.
	Descend
)

// overlay xattrs that describe an upper directory to overlayfs; none of them
// means anything once the directory is part of a lower one.
var overlayDirXattrs = []string{overlayOpaque, "trusted.overlay.impure", "trusted.overlay.origin", "trusted.overlay.redirect"}

// MergeUpper applies what an overlay mount recorded in its upper directory
// to its lower directory (the mount's only lowerdir), so that lower becomes
// what the merged view showed: a whiteout (0/0 character device) removes the
// lower path, an opaque directory replaces the lower one, and files,
// symlinks and new directories move from upper to lower by rename, never by
// copy. choose is asked about paths (slash-separated, relative) from the top
// down and decides, for lower and upper alike, which of them survive.
//
// The overlay must be unmounted (and was mounted with redirect_dir, index
// and metacopy off). Both trees may hold anything an untrusted process
// wrote: no symlink in either is ever followed, and every operation is
// relative to a directory descriptor opened without following one. upper
// is consumed: what is not moved is left there for the caller to remove.
//
// It is not atomic: interrupted, lower holds part of the changes. Callers
// that need all or nothing mark lower as in flux first.
func MergeUpper(upper, lower string, choose func(rel string) Choice) error {
	ufd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: upper, Err: err}
	}
	defer unix.Close(ufd)
	lfd, err := unix.Open(lower, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: lower, Err: err}
	}
	defer unix.Close(lfd)
	m := &merger{choose: choose}
	return m.dir(ufd, lfd, "")
}

type merger struct {
	choose func(string) Choice
}

// dir merges the directory upper (-1 when the upper tree has none here)
// into lower, whose entries rel names.
func (m *merger) dir(ufd, lfd int, rel string) error {
	names, err := readNames(lfd)
	if err != nil {
		return err
	}
	if ufd >= 0 {
		un, err := readNames(ufd)
		if err != nil {
			return err
		}
		names = append(names, un...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		if err := m.entry(ufd, lfd, name, path.Join(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func (m *merger) entry(ufd, lfd int, name, rel string) error {
	c := m.choose(rel)
	if c == Drop {
		return removeAllAt(lfd, name)
	}
	var ust, lst unix.Stat_t
	inUpper := ufd >= 0 && unix.Fstatat(ufd, name, &ust, unix.AT_SYMLINK_NOFOLLOW) == nil
	inLower := unix.Fstatat(lfd, name, &lst, unix.AT_SYMLINK_NOFOLLOW) == nil
	lowerDir := inLower && lst.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case !inUpper:
		// Unchanged in the build; only a Descend needs to look inside.
		if c == Descend && lowerDir {
			return m.sub(-1, lfd, name, rel)
		}
		return nil
	case ust.Mode&unix.S_IFMT == unix.S_IFCHR && ust.Rdev == 0:
		return removeAllAt(lfd, name) // a whiteout
	case ust.Mode&unix.S_IFMT != unix.S_IFDIR:
		if lowerDir {
			if err := removeAllAt(lfd, name); err != nil {
				return err
			}
		}
		if err := unix.Renameat(ufd, name, lfd, name); err != nil {
			return &os.PathError{Op: "rename", Path: rel, Err: err}
		}
		return nil
	}
	// A directory in upper.
	if inLower && (!lowerDir || isOpaque(ufd, name)) {
		if err := removeAllAt(lfd, name); err != nil {
			return err
		}
		inLower = false
	}
	if !inLower && c == Keep {
		// New (or replacing): the whole subtree moves at once.
		if err := unix.Renameat(ufd, name, lfd, name); err != nil {
			return &os.PathError{Op: "rename", Path: rel, Err: err}
		}
		return clearOverlayXattrs(lfd, name)
	}
	if !inLower {
		if err := unix.Mkdirat(lfd, name, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: rel, Err: err}
		}
	}
	// Both are directories: the upper one carries the attributes.
	if err := unix.Fchownat(lfd, name, int(ust.Uid), int(ust.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: rel, Err: err}
	}
	if err := unix.Fchmodat(lfd, name, ust.Mode&0o7777, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: rel, Err: err}
	}
	if c == Keep {
		keepAll := &merger{choose: func(string) Choice { return Keep }}
		return keepAll.sub(ufd, lfd, name, rel)
	}
	return m.sub(ufd, lfd, name, rel)
}

// sub opens the directory name in upper (unless ufd is -1) and lower and
// merges it.
func (m *merger) sub(ufd, lfd int, name, rel string) error {
	cu := -1
	if ufd >= 0 {
		fd, err := unix.Openat(ufd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: rel, Err: err}
		}
		defer unix.Close(fd)
		cu = fd
	}
	cl, err := unix.Openat(lfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	defer unix.Close(cl)
	return m.dir(cu, cl, rel)
}

func readNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return names, nil
}

func isOpaque(dirfd int, name string) bool {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	buf := make([]byte, 8)
	n, err := unix.Fgetxattr(fd, overlayOpaque, buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// clearOverlayXattrs removes overlay's directory xattrs from the directory
// name, which has just moved into a lower tree.
func clearOverlayXattrs(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	for _, x := range overlayDirXattrs {
		if err := unix.Fremovexattr(fd, x); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return &os.PathError{Op: "removexattr", Path: name, Err: err}
		}
	}
	return nil
}
