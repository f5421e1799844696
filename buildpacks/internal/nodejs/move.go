package nodejs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// move renames src to dst, copying when they are on different file systems
// (the lifecycle usually mounts the app and the layers separately).
func move(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyTree(src, dst); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

func copyTree(src, dst string) error { return walkCopy(src, dst, false) }

// linkTree copies the tree src to dst with hard links where the file
// system allows (two layers of this buildpack), else with copies.
func linkTree(src, dst string) error { return walkCopy(src, dst, true) }

// walkCopy copies the tree src to dst: directories, symbolic links and
// regular files, each file hard-linked when link is set and the file
// system allows.
func walkCopy(src, dst string, link bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			to, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(to, target) //nolint:gosec // G122: the buildpack's own tree, in the build's sandbox
		case d.Type().IsRegular():
			if link {
				if err := os.Link(path, target); err == nil { //nolint:gosec // G122: as above
					return nil
				}
			}
			return cnb.CopyFile(path, target, info.Mode().Perm())
		}
		return nil
	})
}
