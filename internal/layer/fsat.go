package layer

import (
	"errors"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// openInRoot opens rel relative to the directory root, resolving every
// symlink on the way as if root were "/": nothing outside root can be
// reached. Magic links (/proc/self/fd/…) and mount crossings are refused.
func openInRoot(root int, rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC), //nolint:gosec // open flags: small and positive
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for range 16 {
		fd, err := unix.Openat2(root, rel, &how)
		// EAGAIN: a concurrent rename raced the lookup; the kernel asks
		// for a retry rather than risk a wrong answer.
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: rel, Err: err}
		}
		return fd, nil
	}
	return -1, &os.PathError{Op: "openat2", Path: rel, Err: unix.EAGAIN}
}

// mkdirAllInRoot returns an O_PATH descriptor of the directory rel inside
// root, creating missing directories (mode 0755, owned by uid:gid) as it
// goes. A dangling symlink on the way gets its target created, inside root,
// the way a container writing through it would see it.
func mkdirAllInRoot(root int, rel string, uid, gid int) (int, error) {
	return mkdirAll(root, rel, uid, gid, 0)
}

func mkdirAll(root int, rel string, uid, gid, depth int) (int, error) {
	fd, err := openInRoot(root, rel, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !errors.Is(err, unix.ENOENT) || rel == "" || rel == "." {
		return fd, err
	}
	if depth > 40 {
		return -1, &os.PathError{Op: "mkdir", Path: rel, Err: unix.ELOOP}
	}
	parent, base := path.Split(rel)
	parent = path.Clean(parent)
	pfd, err := mkdirAll(root, parent, uid, gid, depth)
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(pfd, base, 0o755)
	if err == nil {
		err = unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.EPERM) && os.Geteuid() != 0 {
			err = nil
		}
	} else if err == unix.EEXIST {
		// Exists yet does not resolve: a dangling symlink. Its target is
		// taken relative to the parent's path as written (confined to root
		// either way).
		buf := make([]byte, MaxPathLen+1)
		n, rerr := unix.Readlinkat(pfd, base, buf)
		unix.Close(pfd)
		if rerr != nil || n > MaxPathLen {
			return -1, &os.PathError{Op: "mkdir", Path: rel, Err: unix.ENOTDIR}
		}
		target := string(buf[:n])
		if !path.IsAbs(target) {
			target = path.Join(parent, target)
		}
		tfd, err := mkdirAll(root, cleanName(target), uid, gid, depth+1)
		if err != nil {
			return -1, err
		}
		unix.Close(tfd)
		return openInRoot(root, rel, unix.O_PATH|unix.O_DIRECTORY)
	}
	unix.Close(pfd)
	if err != nil {
		return -1, &os.PathError{Op: "mkdir", Path: rel, Err: err}
	}
	return openInRoot(root, rel, unix.O_PATH|unix.O_DIRECTORY)
}

// removeAllAt removes name in dirfd and, if it is a directory, everything
// below it, never following a symlink.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return &os.PathError{Op: "unlinkat", Path: name, Err: err}
	}
	if err := clearDirAt(dirfd, name, nil); err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// clearDirAt removes the entries of the directory name in dirfd for which
// keep (when not nil) returns false.
func clearDirAt(dirfd int, name string, keep func(child string) bool) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	dir := os.NewFile(uintptr(fd), name)
	defer dir.Close()
	for {
		names, err := dir.Readdirnames(256)
		for _, n := range names {
			if keep != nil && keep(n) {
				continue
			}
			if err := removeAllAt(fd, n); err != nil {
				return err
			}
		}
		if err != nil {
			return nil // io.EOF, or a read error after which the rmdir reports
		}
	}
}

// isDirAt reports whether name in dirfd is a directory (not a symlink to one).
func isDirAt(dirfd int, name string) (bool, bool) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, true
}
