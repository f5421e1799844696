package layer

import (
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// overlayOpaque is the xattr overlayfs reads on a directory whose lower
	// layers' contents are hidden.
	overlayOpaque = "trusted.overlay.opaque"
)

// whiteout handles the entry parent/base whose base starts with ".wh.".
func (x *extractor) whiteout(parent, base string) error {
	target := strings.TrimPrefix(base, whiteoutPrefix)
	opaque := base == whiteoutOpaque
	if !opaque && (target == "" || target == "." || target == ".." || strings.HasPrefix(target, whiteoutPrefix)) {
		// Names no real file can have (".wh.", ".wh...", ".wh..wh..opqX"):
		// dropped, so they neither delete nor create anything.
		x.stats.Dropped++
		return nil
	}
	pfd, err := mkdirAllInRoot(x.root, parent, x.id(0), x.id(0))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if x.opt.Whiteouts == ApplyWhiteouts {
		if opaque {
			// Only what the layers below put there goes; what this layer
			// already wrote in the directory stays.
			return clearDirAt(pfd, ".", func(child string) bool {
				return x.written[path.Join(parent, child)]
			})
		}
		return removeAllAt(pfd, target)
	}
	if opaque {
		fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: parent, Err: err}
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0); err != nil {
			return &os.PathError{Op: "setxattr", Path: parent, Err: err}
		}
		return nil
	}
	if err := removeAllAt(pfd, target); err != nil {
		return err
	}
	x.written[path.Join(parent, target)] = true
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod whiteout", Path: path.Join(parent, target), Err: err}
	}
	return nil
}
