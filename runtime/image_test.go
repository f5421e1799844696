package runtime_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/skiffhq/skiff/internal/container/containertest"
)

// tarEntry is a file of a test layer.
type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	body       []byte
}

func layerOf(t testing.TB, ents ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage writes an image to the OCI layout in dir and returns its
// manifest digest: the probe as /app/probe, serving by default, as uid
// 1000, plus extra layers.
func testImage(t testing.TB, dir string, extra ...v1.Layer) string {
	t.Helper()
	return testImageAs(t, dir, "1000:1000", extra...)
}

// testImageAs is testImage with the config's user set to user.
func testImageAs(t testing.TB, dir, user string, extra ...v1.Layer) string {
	t.Helper()
	probe, err := os.ReadFile(containertest.Probe(t))
	if err != nil {
		t.Fatal(err)
	}
	base := layerOf(t,
		tarEntry{name: "app/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "app/probe", typ: tar.TypeReg, mode: 0o755, body: probe},
		tarEntry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, body: []byte("root:x:0:0::/:/\napp:x:1000:1000::/app:/\n")},
	)
	img, err := mutate.AppendLayers(empty.Image, append([]v1.Layer{base}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return writeImage(t, dir, img, func(c *v1.Config) {
		c.Entrypoint = []string{"/app/probe"}
		c.Cmd = []string{"serve"}
		c.User = user
		c.WorkingDir = "/app"
		c.Env = []string{"PATH=/app", "FROM_IMAGE=yes"}
	})
}

// busyboxImage writes an image of busybox's programs (C, with no signal
// handlers of their own) running cmd through sh, as uid 1000.
func busyboxImage(t testing.TB, dir, cmd string) string {
	t.Helper()
	bb, err := os.ReadFile(filepath.Join(containertest.BusyboxRootfs(t), "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	ents := []tarEntry{{name: "bin/", typ: tar.TypeDir, mode: 0o755}, {name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, body: bb}}
	for _, n := range []string{"sh", "sleep", "echo"} {
		ents = append(ents, tarEntry{name: "bin/" + n, typ: tar.TypeSymlink, link: "busybox"})
	}
	img, err := mutate.AppendLayers(empty.Image, layerOf(t, ents...))
	if err != nil {
		t.Fatal(err)
	}
	return writeImage(t, dir, img, func(c *v1.Config) {
		c.Cmd = []string{"sh", "-c", cmd}
		c.User = "1000:1000"
		c.Env = []string{"PATH=/bin"}
	})
}

// writeImage sets img's config with edit and appends it to the OCI layout
// in dir; it returns the manifest digest.
func writeImage(t testing.TB, dir string, img v1.Image, edit func(*v1.Config)) string {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	edit(&cf.Config)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// An instance of an image whose layers are unpacked starts without reading
// the layer blobs again: a start costs the same with a 200 MB toolchain in
// the image as without.
func TestStartReadsNoBlobOfUnpackedLayers(t *testing.T) {
	f, rt := newRuntime(t)
	in, err := rt.Start(context.Background(), spec(f, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	ready(t, rt, in.ID)
	if err := rt.Stop(context.Background(), in.ID, 0); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(f.images)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(f.image)
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		if err := os.Remove(filepath.Join(f.images, "blobs", d.Algorithm, d.Hex)); err != nil {
			t.Fatal(err)
		}
	}
	in, err = rt.Start(context.Background(), spec(f, "shop"))
	if err != nil {
		t.Fatalf("start with the layers unpacked and their blobs gone: %v", err)
	}
	ready(t, rt, in.ID)
}
