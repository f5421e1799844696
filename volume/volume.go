// Package volume keeps persistent storage on the local disk: one directory
// per volume under DATA/volumes, made by skiff and bind-mounted by the
// runtime into the containers the volume is given to (the runtime hands the
// directory to the container's user at each start). It measures what the
// files take and removes them. Nothing here follows a symlink a tenant
// made: the walk uses lstat and removal never leaves the volume.
//
//	volumes/<volume-id>/   the files, as the app wrote them
package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/skiffhq/skiff"
)

// Dirs implements skiff.Volumes with directories under one parent.
type Dirs struct {
	dir string
}

var _ skiff.Volumes = (*Dirs)(nil)

// New returns the volumes under dir (DATA/volumes), making dir if needed:
// 0711, so that containers' mapped users reach their own volume but can
// list no other.
func New(dir string) (*Dirs, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	return &Dirs{dir: dir}, nil
}

var idRE = regexp.MustCompile(`^vol-[0-9a-f]{16}$`)

// Path implements skiff.Volumes.
func (d *Dirs) Path(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("invalid volume id %q", id)
	}
	return filepath.Join(d.dir, id), nil
}

// Ensure implements skiff.Volumes: the directory is made 0700 and owned by
// root; the first container that mounts it gets it.
func (d *Dirs) Ensure(ctx context.Context, id string) error {
	p, err := d.Path(id)
	if err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("volume %s: %s is not a directory", id, p)
	}
	return nil
}

// Usage implements skiff.Volumes: the blocks the files take, counting each
// hard-linked file once, as du does.
func (d *Dirs) Usage(ctx context.Context, id string) (int64, error) {
	p, err := d.Path(id)
	if err != nil {
		return 0, err
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != p {
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
		return 0, skiff.Errorf(skiff.ENOTFOUND, "the directory of volume %s is missing", id)
	}
	return total, err
}

// Remove implements skiff.Volumes.
func (d *Dirs) Remove(ctx context.Context, id string) error {
	p, err := d.Path(id)
	if err != nil {
		return err
	}
	return os.RemoveAll(p)
}
