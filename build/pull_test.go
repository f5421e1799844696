package build

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/imagestore"
)

// gzipped returns img with gzip-compressed layers, as registries serve them.
func gzipped(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	layers, _ := img.Layers()
	var adds []mutate.Addendum
	for _, l := range layers {
		l := l
		gl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return l.Uncompressed() })
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: gl})
	}
	out, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	out, err = mutate.ConfigFile(out, cf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPullBuilderFromRegistry(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	builderRef, runRef := host+"/cnb/builder:synth", host+"/cnb/run:synth"

	// Make a builder in a scratch store and push it with its run image.
	src := newTestPlatform(t, Config{})
	putBase(t, src.store, "skiff.local/build-base:synth", nil)
	putBase(t, src.store, runRef, nil)
	if _, err := src.CreateBuilderImage(ctx, BuilderSpec{Ref: builderRef, BaseRef: "skiff.local/build-base:synth", RunRef: runRef,
		UID: 1000, GID: 1000, BuildpacksDir: synthBuildpacks(t)}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{builderRef, runRef} {
		img, err := src.store.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := name.ParseReference(ref)
		if err := remote.Write(r, gzipped(t, img)); err != nil {
			t.Fatal(err)
		}
	}
	// Not a builder.
	plain, _ := name.ParseReference(host + "/plain:1")
	if err := remote.Write(plain, gzipped(t, mustImage(t, src.store, runRef))); err != nil {
		t.Fatal(err)
	}

	p := newTestPlatform(t, Config{})
	var out bytes.Buffer
	got, err := p.PullBuilder(ctx, builderRef, &out)
	t.Logf("pull output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if got != builderRef {
		t.Errorf("name %q, want %q", got, builderRef)
	}
	run := mustImage(t, p.store, runRef)
	ls, _ := run.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		diff, _ := l.DiffID()
		if d != diff {
			t.Errorf("run image layer %s stored compressed", d)
		}
	}
	if _, err := p.PullBuilder(ctx, host+"/plain:1", &out); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("pulling a non-builder: %v, want invalid", err)
	}
	if _, err := p.PullBuilder(ctx, host+"/missing:1", &out); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Errorf("pulling a missing image: %v, want unavailable", err)
	}

	if testingRoot() {
		var bout bytes.Buffer
		res, err := p.Build(ctx, &skiff.BuildRequest{App: &skiff.App{ID: "pulled", Name: "pulled"}, BuildID: "p1",
			Builder: got, Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &bout)
		t.Logf("build output:\n%s", bout.String())
		if err != nil {
			t.Fatal(err)
		}
		if res.Builder != builderRef {
			t.Errorf("result builder %q", res.Builder)
		}
	}
}

func mustImage(t *testing.T, s *imagestore.Store, ref string) v1.Image {
	t.Helper()
	img, err := s.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
