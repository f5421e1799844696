package build

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// layerTime is the modification time of the files skiff adds to images,
// fixed so that an unchanged buildpack or lifecycle yields the same layer
// digest every time the builder is made (as pack does).
var layerTime = time.Date(1980, 1, 1, 0, 0, 1, 0, time.UTC)

// tarBuilder writes a layer tar, adding parent directories as needed.
type tarBuilder struct {
	tw   *tar.Writer
	dirs map[string]bool
	// overlayUpper makes tree read an overlay's upper directory: its
	// whiteouts (0/0 character devices) and opaque directories become the
	// OCI layer's .wh. entries.
	overlayUpper bool
}

func newTarBuilder(w io.Writer) *tarBuilder {
	return &tarBuilder{tw: tar.NewWriter(w), dirs: map[string]bool{}}
}

// dir adds a directory (and its parents, root-owned 0755).
func (t *tarBuilder) dir(name string, mode int64, uid, gid int) error {
	name = path.Clean(name)
	if name == "." || name == "/" || t.dirs[name] {
		return nil
	}
	if err := t.dir(path.Dir(name), 0o755, 0, 0); err != nil {
		return err
	}
	t.dirs[name] = true
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: trimSlash(name) + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: layerTime, Format: tar.FormatPAX})
}

// file adds a regular file with the given content.
func (t *tarBuilder) file(name string, mode int64, body []byte) error {
	if err := t.dir(path.Dir(path.Clean(name)), 0o755, 0, 0); err != nil {
		return err
	}
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: trimSlash(name), Mode: mode, Size: int64(len(body)), ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := t.tw.Write(body)
	return err
}

// fileFrom adds the regular file src of fsys, copied as it is read (a
// file that changes size meanwhile fails the layer).
func (t *tarBuilder) fileFrom(name string, mode int64, fsys fs.FS, src string) error {
	f, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read only: its close has nothing to report
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := t.dir(path.Dir(path.Clean(name)), 0o755, 0, 0); err != nil {
		return err
	}
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: trimSlash(name), Mode: mode, Size: fi.Size(), ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(t.tw, f)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("%s: read %d bytes of %d", src, n, fi.Size())
	}
	return err
}

// symlink adds a symbolic link.
func (t *tarBuilder) symlink(name, target string) error {
	if err := t.dir(path.Dir(path.Clean(name)), 0o755, 0, 0); err != nil {
		return err
	}
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: trimSlash(name), Linkname: target, Mode: 0o777, ModTime: layerTime, Format: tar.FormatPAX})
}

// tree adds the directory src under dst in sorted order. With keepOwners
// the files keep their owners and times (a root file system); otherwise they
// are root-owned with the fixed layer time (skiff's own files). Hardlinks
// stay hardlinks; device nodes, sockets and fifos are left out (skiff builds
// /dev itself).
func (t *tarBuilder) tree(src, dst string, keepOwners bool) error {
	links := map[[2]uint64]string{}
	var rootDev uint64
	if fi, err := os.Stat(src); err != nil {
		return err
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		rootDev = st.Dev
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		uid, gid, mtime := 0, 0, layerTime
		if keepOwners && st != nil {
			uid, gid, mtime = int(st.Uid), int(st.Gid), fi.ModTime()
		}
		mode := int64(fi.Mode().Perm())
		if fi.Mode()&fs.ModeSetuid != 0 {
			mode |= 0o4000
		}
		if fi.Mode()&fs.ModeSetgid != 0 {
			mode |= 0o2000
		}
		if fi.Mode()&fs.ModeSticky != 0 {
			mode |= 0o1000
		}
		hdr := &tar.Header{Name: trimSlash(name), Mode: mode, Uid: uid, Gid: gid, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case d.IsDir() && st != nil && st.Dev != rootDev:
			return filepath.SkipDir // another file system mounted inside: not ours
		case d.IsDir():
			if name == dst && (dst == "/" || dst == "") {
				return nil
			}
			if err := t.dir(path.Dir(name), 0o755, 0, 0); err != nil {
				return err
			}
			t.dirs[path.Clean(name)] = true
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
			if err := t.tw.WriteHeader(hdr); err != nil {
				return err
			}
			if t.overlayUpper && isOpaqueDir(p) {
				return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: hdr.Name + ".wh..wh..opq", Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX})
			}
			return nil
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			return t.tw.WriteHeader(hdr)
		case fi.Mode().IsRegular():
			if st != nil && st.Nlink > 1 {
				key := [2]uint64{st.Dev, st.Ino}
				if first, ok := links[key]; ok {
					hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
					return t.tw.WriteHeader(hdr)
				}
				links[key] = hdr.Name
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
			if err := t.tw.WriteHeader(hdr); err != nil {
				return err
			}
			f, err := os.Open(p) //nolint:gosec // G122: skiff's own files (buildpacks, lifecycle); nothing else writes them
			if err != nil {
				return err
			}
			defer f.Close()
			if n, err := io.Copy(t.tw, f); err != nil {
				return err
			} else if n != fi.Size() {
				return fmt.Errorf("%s changed while it was archived", p)
			}
			return nil
		case t.overlayUpper && fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0:
			dir, base := path.Split(trimSlash(name))
			return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + ".wh." + base, Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX})
		default:
			return nil
		}
	})
}

// isOpaqueDir reports whether overlayfs marked the directory p opaque: its
// lower layers' contents are hidden.
func isOpaqueDir(p string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

func (t *tarBuilder) close() error { return t.tw.Close() }

func trimSlash(name string) string {
	for len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	return name
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
