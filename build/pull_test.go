package build

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/egress"
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

	// The registry is on 127.0.0.1: refused until an admin allows it.
	refusing, _ := egress.New(egress.Config{})
	var out bytes.Buffer
	_, err := newTestPlatform(t, Config{Egress: refusing}).PullBuilder(ctx, builderRef, &out)
	if skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "--allow-registry "+host) {
		t.Fatalf("pull from 127.0.0.1 without --allow-registry: %v", err)
	}
	allowing, _ := egress.New(egress.Config{Allow: []string{host}})
	p := newTestPlatform(t, Config{Egress: allowing})
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

// Whatever answers in a registry's place, its words never reach the user:
// here the daemon's own SSH port, whose banner a pull once returned.
func TestPullErrorsKeepPeerWordsOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "SSH-2.0-skiff\r\nsecret words from the peer\r\n")
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	}()
	host := l.Addr().String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"secret words from the peer"}]}`)
	}))
	defer srv.Close()
	allowing, _ := egress.New(egress.Config{Allow: []string{host, strings.TrimPrefix(srv.URL, "http://")}})
	p := newTestPlatform(t, Config{Egress: allowing})
	for _, ref := range []string{host + "/x:1", strings.TrimPrefix(srv.URL, "http://") + "/x:1"} {
		_, err := p.PullBuilder(context.Background(), ref, io.Discard)
		if err == nil {
			t.Fatalf("%s: pulled", ref)
		}
		if msg := err.Error(); strings.Contains(msg, "SSH-2.0") || strings.Contains(msg, "secret") {
			t.Errorf("%s: the peer's words reached the user: %s", ref, msg)
		} else {
			t.Logf("%s: %s", ref, msg)
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
