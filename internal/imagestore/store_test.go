package imagestore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tarLayer(t *testing.T, s *Store, files map[string]string) v1.Layer {
	t.Helper()
	l, err := s.PutLayer(context.Background(), func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for _, n := range slices.Sorted(func(yield func(string) bool) {
			for k := range files {
				if !yield(k) {
					return
				}
			}
		}) {
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			io.WriteString(tw, files[n])
		}
		return tw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPutResolveRead(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	base := tarLayer(t, s, map[string]string{"etc/os-release": "ID=debian\n"})
	d, _ := base.Digest()
	diff, _ := base.DiffID()
	if d != diff {
		t.Fatalf("skiff's own layers must be uncompressed: digest %s, diffID %s", d, diff)
	}
	h, err := s.Put(ctx, "skiff.local/run:bookworm", imageOf(t, base))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"skiff.local/run:bookworm", h.String(), "skiff.local/run@" + h.String()} {
		got, err := s.Resolve(ref)
		if err != nil || got != h {
			t.Errorf("Resolve(%s) = %s, %v; want %s", ref, got, err, h)
		}
	}
	if _, err := s.Resolve("skiff.local/run:other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tag: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Resolve("run:bookworm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a bare name is Docker Hub's, not skiff.local's: err = %v", err)
	}
	img, err := s.Image("skiff.local/run:bookworm")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers = %v, %v", ls, err)
	}
	rc, _ := ls[0].Uncompressed()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "etc/os-release" {
		t.Fatalf("layer content: %v %v", hdr, err)
	}
	rc.Close()
	fi, err := os.Stat(s.BlobPath(d))
	if err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("blobs must be read-only: %v %v", fi.Mode(), err)
	}

	// Re-tagging moves the name; the old image is unnamed.
	h2, err := s.Put(ctx, "skiff.local/run:bookworm", imageOf(t, base, tarLayer(t, s, map[string]string{"x": "y"})))
	if err != nil || h2 == h {
		t.Fatal(h2, err)
	}
	list, _ := s.List()
	if len(list) != 1 || list[0].Digest != h2 {
		t.Errorf("list after re-tag = %v", list)
	}
	// A reopened store sees the same names.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Resolve("skiff.local/run:bookworm"); err != nil || got != h2 {
		t.Errorf("reopened: %s %v", got, err)
	}
}

func TestPutRejectsDigestRefs(t *testing.T) {
	s := openStore(t)
	img, _ := random.Image(100, 1)
	h, _ := img.Digest()
	if _, err := s.Put(context.Background(), "skiff.local/x@"+h.String(), img); err == nil {
		t.Fatal("Put with a digest reference must fail")
	}
}

// A build's output layout is writable by the build: a blob whose content
// does not match its name must not enter the store.
func TestImportLayoutVerifiesBlobs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	ld, _ := ls[1].Digest()
	blob := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	good, _ := os.ReadFile(blob)
	if err := os.WriteFile(blob, bytes.Repeat([]byte("x"), len(good)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportLayout(ctx, AppRef("app1", "b1"), dir); err == nil {
		t.Fatal("import of a tampered layout succeeded")
	}
	if s.has(ld) {
		t.Fatal("tampered blob entered the store")
	}
	if _, err := s.Resolve(AppRef("app1", "b1")); !errors.Is(err, ErrNotFound) {
		t.Fatal("failed import left a name behind")
	}
	os.WriteFile(blob, good, 0o644)
	h, err := s.ImportLayout(ctx, AppRef("app1", "b1"), dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if h != want {
		t.Errorf("digest %s, want %s", h, want)
	}
}

func TestLendHardlinks(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := tarLayer(t, s, map[string]string{"bin/sh": "#!"})
	h, err := s.Put(ctx, "skiff.local/run:x", imageOf(t, l))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "skiff.local", "run", "x")
	got, err := s.Lend("skiff.local/run:x", dst)
	if err != nil || got != h {
		t.Fatal(got, err)
	}
	p, err := layout.FromPath(dst)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != h {
		t.Errorf("lent image digest %s, want %s", d, h)
	}
	ld, _ := l.Digest()
	a, _ := os.Stat(s.BlobPath(ld))
	b, _ := os.Stat(filepath.Join(dst, "blobs", "sha256", ld.Hex))
	if !os.SameFile(a, b) {
		t.Error("lent layer is a copy, not a hardlink")
	}
}

func TestGC(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	shared := tarLayer(t, s, map[string]string{"base": "1"})
	run, err := s.Put(ctx, "skiff.local/run:x", imageOf(t, shared))
	if err != nil {
		t.Fatal(err)
	}
	var apps []v1.Hash
	var appLayers []v1.Hash
	for i, c := range []string{"a", "b", "c"} {
		l := tarLayer(t, s, map[string]string{"app": c})
		h, err := s.Put(ctx, AppRef("app1", "b"+c), imageOf(t, shared, l))
		if err != nil {
			t.Fatal(i, err)
		}
		apps = append(apps, h)
		d, _ := l.Digest()
		appLayers = append(appLayers, d)
	}
	// An unnamed leftover, and a stray temporary file.
	orphan := tarLayer(t, s, map[string]string{"orphan": "1"})
	od, _ := orphan.Digest()
	os.WriteFile(filepath.Join(s.Dir(), "blobs", "sha256", ".tmp-crash"), []byte("x"), 0o644)

	res, err := s.GC(ctx, []v1.Hash{apps[2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Untagged) != 2 {
		t.Errorf("untagged %v, want the two older app images", res.Untagged)
	}
	if _, err := s.Image("skiff.local/run:x"); err != nil {
		t.Errorf("run image lost: %v", err)
	}
	if got, err := s.Resolve(AppRef("app1", "bc")); err != nil || got != apps[2] {
		t.Errorf("kept image lost: %v", err)
	}
	sd, _ := shared.Digest()
	for _, h := range []v1.Hash{run, apps[2], sd, appLayers[2]} {
		if !s.has(h) {
			t.Errorf("live blob %s removed", h)
		}
	}
	for _, h := range []v1.Hash{apps[0], apps[1], appLayers[0], appLayers[1], od} {
		if s.has(h) {
			t.Errorf("dead blob %s kept", h)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "blobs", "sha256", ".tmp-crash")); err == nil {
		t.Error("leftover temporary file kept")
	}
	// The kept image is still whole.
	img, _ := s.Image(apps[2].String())
	if err := validateImage(img); err != nil {
		t.Error(err)
	}
}

func validateImage(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	_, err = img.ConfigFile()
	return err
}

// A sparse loan has the manifest, the config and only the layers asked
// for; the image still reads, with its diffIDs from the config.
func TestLendSparse(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	a := tarLayer(t, s, map[string]string{"a": "1"})
	b := tarLayer(t, s, map[string]string{"b": "2"})
	h, err := s.Put(ctx, "skiff.local/app/x:1", imageOf(t, a, b))
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := b.Digest()
	ad, _ := a.Digest()
	dst := filepath.Join(t.TempDir(), "lent")
	if got, err := s.LendSparse("skiff.local/app/x:1", dst, bd); err != nil || got != h {
		t.Fatal(got, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "blobs", "sha256", ad.Hex)); !os.IsNotExist(err) {
		t.Errorf("layer a was lent: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "blobs", "sha256", bd.Hex)); err != nil {
		t.Errorf("layer b, asked for, was not lent: %v", err)
	}
	p, err := layout.FromPath(dst)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil || len(cf.RootFS.DiffIDs) != 2 {
		t.Fatalf("config of the sparse loan: %v %v", cf, err)
	}
}
