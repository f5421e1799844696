package fetch

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Limits of one archive: far above a Node.js or Go release, low enough that
// a hostile archive cannot fill the disk.
const (
	MaxExtractBytes   = 4 << 30
	MaxExtractEntries = 200_000
)

// ExtractTarGz unpacks a gzip-compressed tar into dst, dropping the first
// strip path components of each entry (npm tarballs hold "package/").
// Regular files, directories and symlinks that stay inside dst are
// unpacked; hard links to earlier entries become copies' links; anything
// else is skipped.
func ExtractTarGz(r io.Reader, dst string, strip int) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer func() { _ = gz.Close() }() // reading: tar reports a bad stream
	return ExtractTar(gz, dst, strip)
}

// ExtractOption changes how ExtractTar unpacks.
type ExtractOption int

// RelativeLinks turns a symlink to an absolute path into one relative to
// dst: a root file system's archive (a Debian package) unpacked somewhere
// else than /, whose links name places of that root.
const RelativeLinks ExtractOption = 1

// ExtractTar is ExtractTarGz for an uncompressed tar.
func ExtractTar(r io.Reader, dst string, strip int, opts ...ExtractOption) error {
	relative := slices.Contains(opts, RelativeLinks)
	root, err := openRoot(dst)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	tr := tar.NewReader(r)
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		if n >= MaxExtractEntries {
			return fmt.Errorf("extract: more than %d entries", MaxExtractEntries)
		}
		name, ok := entryName(hdr.Name, strip)
		if !ok {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			if total += hdr.Size; total > MaxExtractBytes {
				return fmt.Errorf("extract: more than %d bytes", int64(MaxExtractBytes))
			}
			err = writeEntry(root, name, hdr.FileInfo().Mode(), tr)
		case tar.TypeSymlink:
			target := hdr.Linkname
			if relative && path.IsAbs(target) {
				if target, err = relativeTo(name, target); err != nil {
					return fmt.Errorf("extract %s: %w", hdr.Name, err)
				}
			}
			err = symlinkEntry(root, name, target)
		case tar.TypeLink:
			target, ok := entryName(hdr.Linkname, strip)
			if !ok {
				continue
			}
			err = errors.Join(mkParent(root, name), root.Link(target, name))
		default:
			continue // devices, fifos, PAX leftovers: nothing a toolchain needs
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
	}
}

// ExtractZip unpacks the zip file at src into dst, keeping only the entries
// under prefix (which is removed from their names). Go's module zips keep
// no file modes, so exec reports which files must be executable.
func ExtractZip(src, dst, prefix string, exec func(name string) bool) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer func() { _ = zr.Close() }()
	if len(zr.File) > MaxExtractEntries {
		return fmt.Errorf("extract: more than %d entries", MaxExtractEntries)
	}
	root, err := openRoot(dst)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	var total uint64
	for _, f := range zr.File {
		rel, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			continue
		}
		name, ok := entryName(rel, 0)
		if !ok {
			continue
		}
		if strings.HasSuffix(f.Name, "/") {
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("extract %s: %w", f.Name, err)
			}
			continue
		}
		if !f.Mode().IsRegular() {
			continue
		}
		// The header's size is the archive's word: checked before it is added,
		// so that a size near 2^64 cannot wrap the total.
		if f.UncompressedSize64 > MaxExtractBytes-total {
			return fmt.Errorf("extract: more than %d bytes", int64(MaxExtractBytes))
		}
		mode := fs.FileMode(0o644)
		if exec != nil && exec(name) {
			mode = 0o755
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("extract %s: %w", f.Name, err)
		}
		total += f.UncompressedSize64
		err = writeEntry(root, name, mode, io.LimitReader(rc, int64(f.UncompressedSize64)+1)) //nolint:gosec // at most MaxExtractBytes, checked above
		rc.Close()
		if err != nil {
			return fmt.Errorf("extract %s: %w", f.Name, err)
		}
	}
	return nil
}

func openRoot(dst string) (*os.Root, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, err
	}
	return os.OpenRoot(dst)
}

// entryName cleans an archive path and drops strip leading components. It
// refuses absolute paths and any ".." (rather than resolving them), and
// reports false for entries that strip removes entirely.
func entryName(name string, strip int) (string, bool) {
	name = strings.TrimPrefix(name, "./")
	if name == "" || path.IsAbs(name) || strings.Contains(name, "\\") {
		return "", false
	}
	parts := strings.Split(strings.TrimSuffix(name, "/"), "/")
	for _, p := range parts {
		if p == ".." {
			return "", false
		}
	}
	if len(parts) <= strip {
		return "", false
	}
	clean := path.Clean(strings.Join(parts[strip:], "/"))
	if clean == "." || clean == "" {
		return "", false
	}
	return clean, true
}

func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}

func writeEntry(root *os.Root, name string, mode fs.FileMode, r io.Reader) error {
	if err := mkParent(root, name); err != nil {
		return err
	}
	perm := mode.Perm()&0o755 | 0o600 // owner can always replace it; no group/other write
	_ = root.Remove(name)             // a symlink left by an earlier entry must not be written through
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(name, perm)
	}
	return err
}

// symlinkEntry creates a relative symlink whose target stays inside the
// root; anything else is refused.
func symlinkEntry(root *os.Root, name, target string) error {
	if target == "" || path.IsAbs(target) {
		return fmt.Errorf("symlink to %q leaves the archive", target)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink to %q leaves the archive", target)
	}
	if err := mkParent(root, name); err != nil {
		return err
	}
	// The check above is lexical, so it is only exact when no directory on
	// the way is itself a symlink.
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if fi, err := root.Lstat(dir); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("symlink %q under another symlink", name)
		}
	}
	_ = root.Remove(name) // as above: Symlink fails on what is left
	return root.Symlink(target, name)
}

// relativeTo rewrites an absolute link target as seen from the link at
// name, both inside one root.
func relativeTo(name, target string) (string, error) {
	rel, err := filepath.Rel(path.Dir("/"+name), path.Clean(target))
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}
