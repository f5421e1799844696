package fetch

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tgz(t testing.TB, entries ...entry) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestExtractTarGz(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	data := tgz(t,
		entry{name: "package/bin/node", body: "ELF", mode: 0o777},
		entry{name: "package/lib/a.js", body: "a"},
		entry{name: "package/lib/link.js", typ: tar.TypeSymlink, link: "a.js"},
		entry{name: "package/lib/hard.js", typ: tar.TypeLink, link: "package/lib/a.js"},
		entry{name: "package/dev", typ: tar.TypeChar},
		entry{name: "top-level-only"},
	)
	if err := ExtractTarGz(bytes.NewReader(data), dst, 1); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "bin/node"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/node: %v %v", fi, err)
	}
	for _, name := range []string{"lib/link.js", "lib/hard.js"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != "a" {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "dev")); err == nil {
		t.Error("device extracted")
	}
}

func TestExtractTarGzEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
	}{
		{"dotdot", []entry{{name: "p/../../evil", body: "x"}}},
		{"absolute", []entry{{name: "/tmp/evil", body: "x"}}},
		{"symlink out", []entry{{name: "p/l", typ: tar.TypeSymlink, link: "../../.."}}},
		{"absolute symlink", []entry{{name: "p/l", typ: tar.TypeSymlink, link: "/etc"}}},
		{"write through symlink", []entry{
			{name: "p/l", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "p/l/evil", body: "x"},
		}},
		{"symlink under symlink", []entry{
			{name: "p/d", typ: tar.TypeSymlink, link: "."},
			{name: "p/d/l", typ: tar.TypeSymlink, link: "../x"},
		}},
		{"hardlink out", []entry{{name: "p/h", typ: tar.TypeLink, link: "../../etc/passwd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "out")
			ExtractTarGz(bytes.NewReader(tgz(t, tc.entries...)), dst, 1) // an error is fine; an escape is not
			assertConfined(t, parent, dst)
		})
	}
}

// assertConfined checks that nothing was written beside dst and that no
// symlink in dst points outside it.
func assertConfined(t testing.TB, parent, dst string) {
	t.Helper()
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if e.Name() != "out" {
			t.Fatalf("extraction wrote %s outside its destination", e.Name())
		}
	}
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling inside is harmless
		}
		realDst, _ := filepath.EvalSymlinks(dst)
		if real != realDst && !strings.HasPrefix(real, realDst+"/") {
			t.Fatalf("symlink %s resolves outside: %s", p, real)
		}
		return nil
	})
}

func FuzzExtractTarGz(f *testing.F) {
	f.Add(tgz(f, entry{name: "package/a", body: "x"}, entry{name: "package/l", typ: tar.TypeSymlink, link: "a"}))
	f.Add(tgz(f, entry{name: "package/../x", body: "x"}))
	f.Add(tgz(f, entry{name: "p/d", typ: tar.TypeSymlink, link: "."}, entry{name: "p/d/l", typ: tar.TypeSymlink, link: "../x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "out")
		ExtractTarGz(bytes.NewReader(data), dst, 1)
		assertConfined(t, parent, dst)
	})
}

func TestExtractZip(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string]string{
		"golang.org/toolchain@v0.0.1-go1.25.4.linux-amd64/bin/go":           "go",
		"golang.org/toolchain@v0.0.1-go1.25.4.linux-amd64/src/fmt/print.go": "package fmt",
		"golang.org/toolchain@v0.0.1-go1.25.4.linux-amd64/../../escape":     "x",
		"other/file": "x",
		"golang.org/toolchain@v0.0.1-go1.25.4.linux-amd64/pkg/tool/linux_amd64/compile": "c",
	} {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	zw.Close()
	dir := t.TempDir()
	src := filepath.Join(dir, "tc.zip")
	os.WriteFile(src, buf.Bytes(), 0o644)
	dst := filepath.Join(dir, "out")
	exec := func(name string) bool { return strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "pkg/tool/") }
	if err := ExtractZip(src, dst, "golang.org/toolchain@v0.0.1-go1.25.4.linux-amd64/", exec); err != nil {
		t.Fatal(err)
	}
	for name, perm := range map[string]fs.FileMode{"bin/go": 0o755, "src/fmt/print.go": 0o644, "pkg/tool/linux_amd64/compile": 0o755} {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil || fi.Mode().Perm() != perm {
			t.Errorf("%s: %v %v", name, fi, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Error("zip entry escaped")
	}
	if _, err := os.Stat(filepath.Join(dst, "other")); err == nil {
		t.Error("entry outside the prefix extracted")
	}
}

func TestFileIntegrityAndRetry(t *testing.T) {
	body := []byte("tarball bytes")
	sum := sha512.Sum512(body)
	good := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky":
			if hits.Add(1) == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write(body)
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 2048))
		case "/json":
			w.Write([]byte(`{"a": 1}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := New("test")
	c.Backoff = []time.Duration{time.Millisecond}
	ctx := context.Background()
	dir := t.TempDir()
	path, err := c.File(ctx, srv.URL+"/flaky", dir, 1<<20, good)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, body) || hits.Load() != 2 {
		t.Errorf("got %q after %d requests", b, hits.Load())
	}
	bad := "sha512-" + base64.StdEncoding.EncodeToString(make([]byte, 64))
	if _, err := c.File(ctx, srv.URL+"/flaky", dir, 1<<20, bad); !errors.Is(err, ErrIntegrity) {
		t.Errorf("bad digest: %v", err)
	}
	if _, err := c.File(ctx, srv.URL+"/big", dir, 1024, ""); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized download: %v", err)
	}
	if _, err := c.Text(ctx, srv.URL+"/missing", 1024); !IsNotFound(err) {
		t.Errorf("404: %v", err)
	}
	var v struct{ A int }
	if err := c.JSON(ctx, srv.URL+"/json", "", 1024, &v); err != nil || v.A != 1 {
		t.Errorf("JSON: %v %v", v, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("failed downloads left files: %v", entries)
	}
}
