package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Whiteouts says what extraction does with OCI whiteout entries (.wh.name
// and .wh..wh..opq).
type Whiteouts int

const (
	// OverlayWhiteouts records whiteouts the way overlayfs reads them: a
	// 0/0 character device for a deleted name, the trusted.overlay.opaque
	// xattr for an opaque directory. For a layer unpacked on its own and
	// used as one lowerdir of an overlay mount.
	OverlayWhiteouts Whiteouts = iota
	// ApplyWhiteouts deletes what whiteouts name, for layers unpacked one
	// over the other into a single directory.
	ApplyWhiteouts
	// NoWhiteouts treats .wh. names as ordinary files: for trees that are
	// not image layers, like a pushed source tree, where a file named
	// .wh.x must not delete x.
	NoWhiteouts
)

// Default limits; a layer over them is refused, not truncated.
const (
	DefaultMaxBytes   = 16 << 30 // sum of file sizes
	DefaultMaxEntries = 1 << 20
	MaxPathLen        = 4096
	// IDMapSize is how many ids a shifted extraction maps: ids at or above
	// it (outside a 65536-id user namespace) become NobodyID.
	IDMapSize = 65536
	NobodyID  = 65534
)

// Options tune an extraction.
type Options struct {
	Whiteouts Whiteouts
	// IDShift is added to every owner and group id: the host id of root in
	// the user namespace the files will be used from (0 for none).
	IDShift    int
	MaxBytes   int64 // 0 means DefaultMaxBytes
	MaxEntries int   // 0 means DefaultMaxEntries
}

// Stats describes what an extraction wrote and dropped.
type Stats struct {
	Entries int   // entries read
	Bytes   int64 // file content written
	Dropped int   // devices and unknown entry types left out
}

// ErrLimit is wrapped by errors for layers over a size, count or path limit.
var ErrLimit = errors.New("layer over limit")

// Extract unpacks the uncompressed tar stream r into dir, which must exist
// and should be empty (or hold the layers below, with ApplyWhiteouts). It
// stops at the end of the tar archive; callers that hash the whole stream
// read the rest themselves.
func Extract(ctx context.Context, r io.Reader, dir string, opt Options) (Stats, error) {
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.MaxEntries == 0 {
		opt.MaxEntries = DefaultMaxEntries
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)
	x := &extractor{root: root, opt: opt, root0: os.Geteuid() == 0, written: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return x.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return x.stats, nil
		}
		if err != nil {
			return x.stats, fmt.Errorf("read tar: %w", err)
		}
		x.stats.Entries++
		if x.stats.Entries > opt.MaxEntries {
			return x.stats, fmt.Errorf("more than %d entries: %w", opt.MaxEntries, ErrLimit)
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.stats, fmt.Errorf("%s: %w", quote(hdr.Name), err)
		}
	}
}

type extractor struct {
	root    int
	opt     Options
	root0   bool // running as root: ownership can be set, devices made
	stats   Stats
	written map[string]bool // paths this layer wrote, for opaque dirs in apply mode
}

// cleanName maps an archive path to a path relative to the root: absolute
// paths and "../" are confined, as a container would see them.
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if len(hdr.Name) > MaxPathLen || len(hdr.Linkname) > MaxPathLen {
		return fmt.Errorf("path longer than %d bytes: %w", MaxPathLen, ErrLimit)
	}
	if strings.IndexByte(hdr.Name, 0) >= 0 || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return errors.New("NUL in path")
	}
	name := cleanName(hdr.Name)
	if name == "" {
		// The root itself: only its mode and owner matter.
		if hdr.Typeflag == tar.TypeDir {
			return x.setMeta(x.root, "", hdr, true)
		}
		x.stats.Dropped++
		return nil
	}
	parent, base := path.Split(name)
	parent = path.Clean(parent)
	if strings.HasPrefix(base, whiteoutPrefix) && x.opt.Whiteouts != NoWhiteouts {
		return x.whiteout(parent, base)
	}
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo: //nolint:staticcheck // TypeRegA: old tars still mark regular files '\x00'

	case tar.TypeXGlobalHeader:
		return nil
	default: // devices, and types this code does not know
		x.stats.Dropped++
		return nil
	}
	if hdr.Size < 0 || hdr.Size > x.opt.MaxBytes-x.stats.Bytes {
		return fmt.Errorf("content over %d bytes: %w", x.opt.MaxBytes, ErrLimit)
	}
	pfd, err := mkdirAllInRoot(x.root, parent, x.id(0), x.id(0))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	x.written[name] = true
	if hdr.Typeflag == tar.TypeDir {
		if isDir, exists := isDirAt(pfd, base); exists && !isDir {
			if err := removeAllAt(pfd, base); err != nil {
				return err
			}
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
			return &os.PathError{Op: "mkdirat", Path: name, Err: err}
		}
		return x.setMeta(pfd, base, hdr, true)
	}
	// Anything else replaces what is there, directories included (the way
	// docker and containerd apply layers).
	if err := removeAllAt(pfd, base); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return &os.PathError{Op: "symlinkat", Path: name, Err: err}
		}
		return x.setMeta(pfd, base, hdr, false)
	case tar.TypeLink:
		return x.hardlink(pfd, base, hdr)
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return &os.PathError{Op: "mkfifo", Path: name, Err: err}
		}
		return x.setMeta(pfd, base, hdr, true)
	}
	return x.regular(pfd, base, hdr, r)
}

func (x *extractor) regular(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: base, Err: err}
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	n, err := io.Copy(f, io.LimitReader(r, hdr.Size))
	x.stats.Bytes += n
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != hdr.Size {
		return io.ErrUnexpectedEOF
	}
	if err := x.setFileMeta(f, hdr); err != nil {
		return err
	}
	return f.Close()
}

func (x *extractor) hardlink(pfd int, base string, hdr *tar.Header) error {
	target := cleanName(hdr.Linkname)
	if target == "" {
		return errors.New("hardlink to the root")
	}
	tparent, tbase := path.Split(target)
	tfd, err := openInRoot(x.root, path.Clean(tparent), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("hardlink target %s: %w", quote(hdr.Linkname), err)
	}
	defer unix.Close(tfd)
	// Flag 0: a symlink target is linked itself, never followed.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return &os.PathError{Op: "link", Path: hdr.Linkname, Err: err}
	}
	return nil
}

// setMeta sets owner, mode and times of name in dirfd ("" for dirfd
// itself, which must then be a directory). Symlinks get owner and times only.
func (x *extractor) setMeta(dirfd int, name string, hdr *tar.Header, follow bool) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		name, flags = ".", 0
	}
	if x.root0 {
		if err := unix.Fchownat(dirfd, name, x.id(hdr.Uid), x.id(hdr.Gid), flags); err != nil {
			return &os.PathError{Op: "chown", Path: name, Err: err}
		}
	}
	if follow {
		// name was just created by this extraction as a directory or fifo,
		// so following it cannot lead to a symlink's target.
		if err := unix.Fchmodat(dirfd, name, fileMode(hdr), 0); err != nil {
			return &os.PathError{Op: "chmod", Path: name, Err: err}
		}
	}
	if err := unix.UtimesNanoAt(dirfd, name, mtime(hdr), flags); err != nil {
		return &os.PathError{Op: "utimes", Path: name, Err: err}
	}
	return nil
}

// setFileMeta is setMeta for an open regular file.
func (x *extractor) setFileMeta(f *os.File, hdr *tar.Header) error {
	fd := int(f.Fd())
	if x.root0 {
		if err := unix.Fchown(fd, x.id(hdr.Uid), x.id(hdr.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// After chown, which clears setuid bits anyway.
	if err := unix.Fchmod(fd, fileMode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := unix.UtimesNanoAt(fd, "", mtime(hdr), unix.AT_EMPTY_PATH); err != nil {
		return unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(mtime(hdr)[0].Nano()), unix.NsecToTimeval(mtime(hdr)[1].Nano())})
	}
	return nil
}

// fileMode drops setuid and setgid: nothing in an app image needs to gain
// privilege (and no_new_privs would refuse it anyway). The sticky bit stays
// for /tmp.
func fileMode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o1777 } //nolint:gosec // masked to the permission bits

func mtime(hdr *tar.Header) []unix.Timespec {
	mt := hdr.ModTime
	if mt.Before(time.Unix(0, 0)) {
		mt = time.Unix(0, 0)
	}
	ts := unix.NsecToTimespec(mt.UnixNano())
	return []unix.Timespec{ts, ts}
}

// id maps an archive owner id to the host id the files get.
func (x *extractor) id(n int) int {
	if x.opt.IDShift == 0 {
		return n
	}
	if n < 0 || n >= IDMapSize {
		n = NobodyID
	}
	return n + x.opt.IDShift
}

func quote(s string) string {
	if len(s) > 128 {
		s = s[:128] + "…"
	}
	return fmt.Sprintf("%q", s)
}
