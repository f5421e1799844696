package layer

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// FuzzExtract feeds arbitrary archives to Extract. The oracle: whatever the
// archive holds and whether or not extraction fails, nothing outside the
// root exists or changes.
func FuzzExtract(f *testing.F) {
	s := newSandbox(f)
	seeds := [][]ent{
		{file("../../x", "x"), file("/abs", "a")},
		{symlink("pwn", s.outside), file("pwn/f", "f")},
		{symlink("pwn", "../../../../"+s.outside), file("pwn/f", "f")},
		{symlink("a", "b"), symlink("b", "/"), file("a/f", "f")},
		{hardlink("l", s.canary), hardlink("m", "../../"+s.canary)},
		{symlink("s", s.canary), hardlink("h", "s"), file("h", "x")},
		{dir("d"), symlink("d", s.base), file("d/canary", "pwned")},
		{file(".wh.", ""), file(".wh...", ""), file(".wh..wh..opqX", ""), file("sub/.wh.../x", ""), file("d/.wh..wh..opq", "")},
		{{name: "dev/null", typ: '3'}, {name: "suid", typ: '0', body: "x", mode: 0o4755}},
		{symlink("dev", "/"), symlink("proc", s.outside), symlink("lib64/ld.so", "../lib/ld.so")},
	}
	for _, seed := range seeds {
		f.Add(mktar(f, seed...), false)
		f.Add(mktar(f, seed...), true)
	}
	f.Fuzz(func(t *testing.T, archive []byte, apply bool) {
		requireRoot(t)
		s := newSandbox(t)
		opt := Options{MaxBytes: 1 << 20, MaxEntries: 1000}
		if apply {
			opt.Whiteouts = ApplyWhiteouts
		}
		Extract(context.Background(), bytes.NewReader(archive), s.root, opt)
		s.intact(t)
		if err := os.RemoveAll(s.root); err != nil {
			t.Fatal(err)
		}
	})
}
