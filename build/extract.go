package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// extractTar unpacks an uncompressed layer tar into root, applying
// whiteouts, for a builder's read-only root file system or a source tree.
// Names and link targets are resolved inside root (no path, symlink or
// hardlink escapes), device nodes are dropped, setuid and setgid bits
// stripped. Owners are kept when keepOwners, else the files belong to
// uid:gid.
//
// TODO(runtime): replace with internal/layer.Extract once the runtime
// branch lands it; this is the only place that unpacks tars in build.
func extractTar(ctx context.Context, r io.Reader, root string, keepOwners bool, uid, gid int) error {
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := extractEntry(root, hdr, tr, keepOwners, uid, gid); err != nil {
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
	}
}

func extractEntry(root string, hdr *tar.Header, r io.Reader, keepOwners bool, uid, gid int) error {
	name := path.Clean("/" + hdr.Name)
	if name == "/" || len(name) > 4096 {
		return nil
	}
	dir, base := path.Split(name)
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if fi, err := os.Lstat(parent); err != nil || !fi.IsDir() {
		return fmt.Errorf("parent is not a directory")
	}
	if base == ".wh..wh..opq" {
		ents, err := os.ReadDir(parent)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	if victim, ok := strings.CutPrefix(base, ".wh."); ok {
		if victim == "" || victim == "." || victim == ".." {
			return nil
		}
		return os.RemoveAll(filepath.Join(parent, victim))
	}
	target := filepath.Join(parent, base)
	if !keepOwners {
		hdr.Uid, hdr.Gid = uid, gid
	}
	mode := os.FileMode(hdr.Mode & 0o1777) // no setuid/setgid
	if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
		if err := os.RemoveAll(target); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	case tar.TypeReg:
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscallNoFollow, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
		return os.Lchown(target, hdr.Uid, hdr.Gid)
	case tar.TypeLink:
		src, err := securejoin.SecureJoin(root, hdr.Linkname)
		if err != nil {
			return err
		}
		if fi, err := os.Lstat(src); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("hardlink to %q: not a regular file in the layer", hdr.Linkname)
		}
		return os.Link(src, target)
	default:
		return nil // devices, fifos: dropped
	}
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	return os.Chmod(target, mode)
}
