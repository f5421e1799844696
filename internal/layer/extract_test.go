package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sandbox is a temporary directory with the extraction root and, beside it,
// things an escape would touch: an empty directory and a canary file.
type sandbox struct {
	base, root, outside, canary string
}

func newSandbox(t testing.TB) *sandbox {
	base := t.TempDir()
	s := &sandbox{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside"), canary: filepath.Join(base, "canary")}
	for _, d := range []string{s.root, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.canary, []byte("canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// intact fails unless nothing outside the root changed.
func (s *sandbox) intact(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(s.base)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "canary,outside,root" {
		t.Fatalf("files appeared beside the root: %v", names)
	}
	if out, _ := os.ReadDir(s.outside); len(out) != 0 {
		t.Fatalf("a file was written outside the root: %v", out[0].Name())
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.canary, &st); err != nil || st.Nlink != 1 || st.Size != 6 || st.Mode&0o7777 != 0o644 {
		t.Fatalf("canary changed: %+v %v", st, err)
	}
	if b, _ := os.ReadFile(s.canary); string(b) != "canary" {
		t.Fatalf("canary content changed: %q", b)
	}
}

func (s *sandbox) extract(t testing.TB, opt Options, layers ...[]ent) error {
	t.Helper()
	for _, l := range layers {
		if _, err := Extract(context.Background(), bytes.NewReader(mktar(t, l...)), s.root, opt); err != nil {
			return err
		}
	}
	return nil
}

func requireRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: extraction sets owners and makes whiteout devices")
	}
}

func readIn(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("read %s in root: %v", rel, err)
	}
	return string(b)
}

// TestHostileLayers is the tar corpus of RELIABILITY.md A9: every entry is
// refused or confined to the root, and nothing outside it changes.
func TestHostileLayers(t *testing.T) {
	requireRoot(t)
	type check func(t *testing.T, s *sandbox)
	exists := func(rel string) check {
		return func(t *testing.T, s *sandbox) {
			if _, err := os.Lstat(filepath.Join(s.root, rel)); err != nil {
				t.Fatalf("%s not in root: %v", rel, err)
			}
		}
	}
	absent := func(rel string) check {
		return func(t *testing.T, s *sandbox) {
			if _, err := os.Lstat(filepath.Join(s.root, rel)); err == nil {
				t.Fatalf("%s should not exist", rel)
			}
		}
	}
	// Filled in per test, since the absolute host path is only known then.
	cases := []struct {
		name    string
		layers  func(s *sandbox) [][]ent
		opt     Options
		wantErr error // nil: success; errAny: any error
		checks  []check
	}{
		{name: "dotdot", layers: func(s *sandbox) [][]ent { return [][]ent{{file("../../x", "x"), file("a/../../../y", "y")}} },
			checks: []check{exists("x"), exists("y")}},
		{name: "absolute path", layers: func(s *sandbox) [][]ent {
			return [][]ent{{file(filepath.Join(s.outside, "abs"), "abs")}}
		}, checks: []check{func(t *testing.T, s *sandbox) { readIn(t, s.root, filepath.Join(s.outside, "abs")) }}},
		{name: "absolute symlink then write through it", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("pwn", s.outside), file("pwn/f", "f")}}
		}, checks: []check{func(t *testing.T, s *sandbox) { readIn(t, s.root, filepath.Join(s.outside, "f")) }}},
		{name: "relative symlink climbing out", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("pwn", "../../../../../../../.."+s.outside), file("pwn/f", "f")}}
		}, checks: []check{func(t *testing.T, s *sandbox) { readIn(t, s.root, filepath.Join(s.outside, "f")) }}},
		{name: "chained symlinks to slash", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("a", "b"), symlink("b", "/"), file("a/f", "f")}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			if readIn(t, s.root, "f") != "f" {
				t.Fatal("wrong content")
			}
		}}},
		{name: "hardlink to absolute host file", layers: func(s *sandbox) [][]ent {
			return [][]ent{{hardlink("l", s.canary)}}
		}, wantErr: errAny},
		{name: "hardlink climbing out", layers: func(s *sandbox) [][]ent {
			return [][]ent{{hardlink("l", "../../../../../.."+s.canary)}}
		}, wantErr: errAny},
		{name: "hardlink through a symlinked dir", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("d", s.base), hardlink("l", "d/canary")}}
		}, wantErr: errAny},
		{name: "hardlink to a symlink links the symlink", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("s", s.canary), hardlink("h", "s")}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			if to, err := os.Readlink(filepath.Join(s.root, "h")); err != nil || to != s.canary {
				t.Fatalf("h = %q, %v", to, err)
			}
		}}},
		{name: "dir, then symlink, then write through it", opt: Options{Whiteouts: ApplyWhiteouts}, layers: func(s *sandbox) [][]ent {
			return [][]ent{{dir("d"), file("d/a", "a")}, {symlink("d", s.outside)}, {file("d/f", "f")}}
		}, checks: []check{func(t *testing.T, s *sandbox) { readIn(t, s.root, filepath.Join(s.outside, "f")) }}},
		{name: "symlink replacing a file is not followed", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("f", s.canary), file("f", "new")}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			if readIn(t, s.root, "f") != "new" {
				t.Fatal("wrong content")
			}
		}}},
		{name: "malformed whiteouts dropped", layers: func(s *sandbox) [][]ent {
			return [][]ent{{file(".wh.", ""), file(".wh...", ""), file(".wh..wh..opqX", ""), file("sub/.wh.../x", "x")}}
		}, checks: []check{absent(".wh."), absent(".wh..opqX"), exists("sub/.wh.../x")}},
		{name: "whiteout of dotdot via absolute", layers: func(s *sandbox) [][]ent {
			return [][]ent{{file(filepath.Join(s.base, ".wh.canary"), "")}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(s.root, s.base, "canary"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Fatalf("whiteout not made in root: %v", err)
			}
		}}},
		{name: "devices dropped", layers: func(s *sandbox) [][]ent {
			return [][]ent{{{name: "dev/null", typ: '3'}, {name: "dev/sda", typ: '4'}, {name: "fifo", typ: '6', mode: 0o644}}}
		}, checks: []check{absent("dev/null"), absent("dev/sda"), exists("fifo")}},
		{name: "setuid stripped, caps dropped", layers: func(s *sandbox) [][]ent {
			return [][]ent{{
				{name: "suid", typ: '0', body: "x", mode: 0o4755},
				{name: "sgid", typ: '0', body: "x", mode: 0o2755},
				{name: "capped", typ: '0', body: "x", mode: 0o755, xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "trusted.overlay.opaque": "y"}},
				{name: "tmp", typ: '5', mode: 0o1777},
			}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			for name, want := range map[string]os.FileMode{"suid": 0o755, "sgid": 0o755, "tmp": 0o777 | os.ModeSticky | os.ModeDir} {
				fi, err := os.Lstat(filepath.Join(s.root, name))
				if err != nil || fi.Mode() != want {
					t.Fatalf("%s mode %v, want %v (%v)", name, fi.Mode(), want, err)
				}
			}
			for _, x := range []string{"security.capability", "trusted.overlay.opaque"} {
				if n, err := unix.Lgetxattr(filepath.Join(s.root, "capped"), x, make([]byte, 64)); err == nil {
					t.Fatalf("xattr %s kept (%d bytes)", x, n)
				}
			}
		}}},
		{name: "huge sparse size", layers: func(s *sandbox) [][]ent { return [][]ent{{{name: "big", typ: '0', size: 1 << 40}}} }, wantErr: ErrLimit},
		{name: "content over limit", opt: Options{MaxBytes: 1 << 20}, layers: func(s *sandbox) [][]ent {
			return [][]ent{{file("a", strings.Repeat("x", 600<<10)), file("b", strings.Repeat("x", 600<<10))}}
		}, wantErr: ErrLimit},
		{name: "too many entries", opt: Options{MaxEntries: 10}, layers: func(s *sandbox) [][]ent {
			var l []ent
			for i := range 11 {
				l = append(l, file(strings.Repeat("f", i+1), ""))
			}
			return [][]ent{l}
		}, wantErr: ErrLimit},
		{name: "long path", layers: func(s *sandbox) [][]ent { return [][]ent{{file(strings.Repeat("a/", 2100)+"f", "")}} }, wantErr: ErrLimit},
		{name: "system dirs as symlinks kept as symlinks", layers: func(s *sandbox) [][]ent {
			return [][]ent{{symlink("dev", "/"), symlink("proc", s.outside), symlink("sys", "../.."), symlink("etc/resolv.conf", s.canary)}}
		}, checks: []check{exists("dev"), exists("proc"), exists("etc/resolv.conf")}},
		{name: "relative in-root symlinks keep working", layers: func(s *sandbox) [][]ent {
			return [][]ent{{dir("usr/lib"), file("usr/lib/ld-linux.so.2", "ld"), symlink("lib", "usr/lib"), dir("lib64"), symlink("lib64/ld-linux.so.2", "../lib/ld-linux.so.2")}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			if readIn(t, s.root, "lib64/ld-linux.so.2") != "ld" {
				t.Fatal("relative symlink broken")
			}
		}}},
		{name: "file replaces dir and dir replaces file", opt: Options{Whiteouts: ApplyWhiteouts}, layers: func(s *sandbox) [][]ent {
			return [][]ent{{dir("a"), file("a/x", "x"), file("b", "b")}, {file("a", "file"), dir("b"), file("b/y", "y")}}
		}, checks: []check{func(t *testing.T, s *sandbox) {
			if readIn(t, s.root, "a") != "file" || readIn(t, s.root, "b/y") != "y" {
				t.Fatal("replacement wrong")
			}
		}}},
		{name: "apply whiteouts", opt: Options{Whiteouts: ApplyWhiteouts}, layers: func(s *sandbox) [][]ent {
			return [][]ent{{file("d/old", "o"), file("d/keep", "k"), file("gone", "g")}, {file("d/new", "n"), file("d/.wh..wh..opq", ""), file(".wh.gone", "")}}
		}, checks: []check{absent("d/old"), absent("d/keep"), exists("d/new"), absent("gone")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			err := s.extract(t, c.opt, c.layers(s)...)
			switch {
			case c.wantErr == errAny && err == nil:
				t.Fatal("extraction succeeded, want an error")
			case c.wantErr != nil && c.wantErr != errAny && !errors.Is(err, c.wantErr):
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			case c.wantErr == nil && err != nil:
				t.Fatalf("extract: %v", err)
			}
			for _, chk := range c.checks {
				chk(t, s)
			}
			s.intact(t)
		})
	}
}

var errAny = errors.New("any error")

func TestOverlayWhiteouts(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	err := s.extract(t, Options{IDShift: 100000}, []ent{dir("d"), file("d/.wh..wh..opq", ""), file(".wh.gone", ""), {name: "owned", typ: '0', mode: 0o600}})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(s.root, "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("gone is not a 0/0 whiteout: %+v %v", st, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(s.root, "d"), overlayOpaque, buf); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr: %q %v", buf[:n], err)
	}
	if err := unix.Lstat(filepath.Join(s.root, "owned"), &st); err != nil || st.Uid != 100000 || st.Gid != 100000 {
		t.Fatalf("owner not shifted: %d:%d %v", st.Uid, st.Gid, err)
	}
	s.intact(t)
}

// A source tree is no image layer: its .wh. files are files.
func TestNoWhiteouts(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"x", ".wh.x", ".wh..wh..opq"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
		tw.Write([]byte("ok"))
	}
	tw.Close()
	if _, err := Extract(context.Background(), &buf, dir, Options{Whiteouts: NoWhiteouts}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", ".wh.x", ".wh..wh..opq"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "ok" {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
}
