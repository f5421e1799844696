package layer

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// overlayDirs makes lower (filled by fill), an upper and a work directory,
// and mounts the overlay at merged; it returns the four paths. Root only.
func overlayDirs(t *testing.T, fill func(lower string)) (lower, upper, merged string, unmount func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts an overlay: needs root")
	}
	dir := t.TempDir()
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fill(lower)
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	done := false
	unmount = func() {
		if !done {
			done = true
			if err := unix.Unmount(merged, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(unmount)
	return lower, upper, merged, unmount
}

// snapshot describes a tree: every path with its type, mode, owner and
// content or link target.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		}
		if rel != "." {
			out = append(out, desc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// After the merge, lower is what the overlay's merged view showed: changed,
// deleted, replaced and new files and directories, changed modes and
// owners, symlinks, a directory emptied and refilled (opaque), a file that
// became a directory and one directory that became a file.
func TestMergeUpperIsTheMergedView(t *testing.T) {
	lower, upper, merged, unmount := overlayDirs(t, func(l string) {
		write(t, filepath.Join(l, "a"), "a0")
		write(t, filepath.Join(l, "b"), "b0")
		write(t, filepath.Join(l, "d/x"), "x0")
		write(t, filepath.Join(l, "d/sub/y"), "y0")
		write(t, filepath.Join(l, "e/z"), "z0")
		write(t, filepath.Join(l, "e/w"), "w0")
		write(t, filepath.Join(l, "f"), "f0")
		write(t, filepath.Join(l, "g/deep/file"), "g0")
		write(t, filepath.Join(l, "same/unchanged"), "u0")
		must(t, os.Symlink("a", filepath.Join(l, "s")))
	})
	m := func(p string) string { return filepath.Join(merged, p) }
	write(t, m("a"), "a1")                  // changed
	must(t, os.Remove(m("b")))              // deleted: a whiteout
	must(t, os.RemoveAll(m("d")))           // emptied and made again: opaque
	write(t, m("d/n"), "n1")                //
	must(t, os.Remove(m("e/z")))            // deleted inside a kept directory
	must(t, os.Chmod(m("e"), 0o750))        // the directory's own attributes
	must(t, os.Chown(m("e/w"), 1234, 4321)) //
	must(t, os.Remove(m("f")))              // a file becomes a directory
	write(t, m("f/q"), "q1")                //
	must(t, os.RemoveAll(m("g")))           // a directory becomes a file
	write(t, m("g"), "g1")                  //
	write(t, m("new/dir/file"), "new1")     // new
	must(t, os.Remove(m("s")))              // a symlink retargeted
	must(t, os.Symlink("d/n", m("s")))      //
	want := snapshot(t, merged)
	unmount()
	// The overlay recorded what the merge must understand.
	if fi, err := os.Lstat(filepath.Join(upper, "b")); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("upper/b is no whiteout: %v %v", fi, err)
	}
	if !isOpaque(unix.AT_FDCWD, filepath.Join(upper, "d")) {
		t.Fatal("upper/d is not opaque")
	}

	if err := MergeUpper(upper, lower, func(string) Choice { return Descend }); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, lower); !slices.Equal(got, want) {
		t.Errorf("lower after the merge:\n%s\nthe merged view was:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing of overlay's bookkeeping is left in lower.
	filepath.WalkDir(lower, func(p string, d fs.DirEntry, err error) error {
		if d.Type()&fs.ModeCharDevice != 0 {
			t.Errorf("whiteout left at %s", p)
		}
		if d.IsDir() {
			if n, _ := unix.Getxattr(p, overlayOpaque, make([]byte, 8)); n > 0 {
				t.Errorf("opaque xattr left on %s", p)
			}
		}
		return nil
	})
}

// choose decides what survives, in lower and upper alike: Drop removes a
// lower path and ignores the upper one, Keep takes a subtree whole, Descend
// asks about the entries below.
func TestMergeUpperChoose(t *testing.T) {
	lower, upper, merged, unmount := overlayDirs(t, func(l string) {
		write(t, filepath.Join(l, "bp/kept/old"), "o")
		write(t, filepath.Join(l, "bp/kept.toml"), "k")
		write(t, filepath.Join(l, "bp/gone/f"), "g")
		write(t, filepath.Join(l, "bp/gone.toml"), "g")
		write(t, filepath.Join(l, "other/f"), "x")
	})
	write(t, filepath.Join(merged, "bp/kept/new"), "n")
	write(t, filepath.Join(merged, "bp/fresh/f"), "f")
	write(t, filepath.Join(merged, "bp/fresh.toml"), "f")
	write(t, filepath.Join(merged, "bp/launch-only/f"), "l")
	write(t, filepath.Join(merged, "group.toml"), "g")
	unmount()
	keep := map[string]Choice{"bp": Descend, "bp/kept": Keep, "bp/kept.toml": Keep, "bp/fresh": Keep, "bp/fresh.toml": Keep}
	if err := MergeUpper(upper, lower, func(rel string) Choice { return keep[rel] }); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(lower, func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(lower, p)
			got = append(got, rel)
		}
		return nil
	})
	slices.Sort(got)
	want := []string{"bp/fresh.toml", "bp/fresh/f", "bp/kept.toml", "bp/kept/new", "bp/kept/old"}
	if !slices.Equal(got, want) {
		t.Errorf("lower holds %q, want %q", got, want)
	}
}

// Neither tree's symlinks are followed: a lower symlink where the upper
// tree has a directory, one that a Descend or a Drop meets, and an upper
// symlink moved into lower all leave the directory they point at alone.
func TestMergeUpperFollowsNoSymlink(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "precious"), "p")
	lower, upper, _, unmount := overlayDirs(t, func(l string) {
		must(t, os.Symlink(outside, filepath.Join(l, "bp")))
		must(t, os.Symlink(outside, filepath.Join(l, "walk")))
		must(t, os.Symlink(outside, filepath.Join(l, "drop")))
	})
	unmount()
	// What a build could have left in upper, written here directly: a
	// directory where lower has the symlink, and a symlink of its own.
	write(t, filepath.Join(upper, "bp/layer/precious"), "overwritten")
	must(t, os.Symlink(outside, filepath.Join(upper, "link")))
	choice := map[string]Choice{"bp": Descend, "bp/layer": Keep, "walk": Descend, "drop": Drop, "link": Keep}
	if err := MergeUpper(upper, lower, func(rel string) Choice { return choice[rel] }); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, outside); !slices.Equal(got, []string{"precious -rw-r--r-- 0:0 p"}) {
		t.Errorf("the directory the symlinks point at changed: %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(lower, "bp")); err != nil || !fi.IsDir() {
		t.Errorf("lower/bp should now be a directory: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(lower, "walk")); err != nil || l != outside {
		t.Errorf("lower/walk: %q %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(lower, "drop")); !os.IsNotExist(err) {
		t.Errorf("lower/drop: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(lower, "link")); err != nil || l != outside {
		t.Errorf("lower/link: %q %v", l, err)
	}
}
