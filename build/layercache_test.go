package build

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func diffIDs(t *testing.T, p *Platform, image string) []v1.Hash {
	t.Helper()
	img, err := p.store.Image(image)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// A cached rebuild after a one-line change gives the image a cold build of
// the same source gives, layer for layer, and the layers that did not
// change keep their digests: the cache changes how fast, never what.
func TestCachedRebuildIsTheColdBuild(t *testing.T) {
	f := newSynthFixture(t, "same")
	first, _ := f.mustBuild("ok 1", "")
	cached, out := f.mustBuild("ok 2", first.Image)
	if !strings.Contains(out, "deps: reused from cache") {
		t.Fatalf("the second build did not use the cache:\n%s", out)
	}
	if err := f.p.PurgeCache(context.Background(), f.app.ID); err != nil {
		t.Fatal(err)
	}
	cold, out := f.mustBuild("ok 2", "")
	if !strings.Contains(out, "deps: installed") {
		t.Fatalf("the build after the purge was not cold:\n%s", out)
	}
	a, b, c := diffIDs(t, f.p, first.Image), diffIDs(t, f.p, cached.Image), diffIDs(t, f.p, cold.Image)
	if !slices.Equal(b, c) {
		t.Errorf("cached rebuild's layers %v\ncold build's layers      %v", b, c)
	}
	// Only the source and the layer made from it (the app layer's version
	// file) changed between the pushes.
	changed := 0
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			changed++
		}
	}
	if len(a) != len(b) || changed != 2 {
		t.Errorf("%d layers changed between the builds, want 2 (the source and the app layer):\n%v\n%v", changed, a, b)
	}
}

// What a buildpack finds of a cached layer is what the lifecycle's restorer
// gives it: the directory, and a <layer>.toml with the metadata and no
// [types]. A layer not marked cache=true is not kept.
func TestCacheKeepsOnlyCachedLayersWithTheirMetadata(t *testing.T) {
	f := newSynthFixture(t, "meta")
	f.mustBuild("ok 1", "")
	_, out := f.mustBuild("ok 2", "")
	if !strings.Contains(out, `deps.toml: "[metadata]\n  key = \"deps-1\"\n"`) {
		t.Errorf("the restored deps.toml is not the metadata alone:\n%s", out)
	}
	kept := filepath.Join(f.p.cacheDir(f.app.ID), "layers", "synth_bp")
	ents, err := os.ReadDir(kept)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"deps", "deps.toml"}) {
		t.Errorf("the cache keeps %q, want only the cache=true layer deps and its toml", names)
	}
}

// A build that changes a cached layer and then fails leaves the cache as
// the last successful build left it.
func TestFailedBuildLeavesTheCache(t *testing.T) {
	f := newSynthFixture(t, "taint")
	first, _ := f.mustBuild("ok 1", "")
	if res, out := f.build("taint", first.Image); res != nil {
		t.Fatalf("the tainting build succeeded:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(f.p.cacheDir(f.app.ID), "layers", "synth_bp", "deps", "installed"))
	if err != nil || string(b) != "deps-1" {
		t.Fatalf("the cached layer after a failed build: %q %v", b, err)
	}
	if _, out := f.mustBuild("ok 2", first.Image); !strings.Contains(out, "deps: reused from cache") {
		t.Errorf("the build after the failed one did not reuse the cache:\n%s", out)
	}
}

// A cache whose last merge was interrupted (a crash in the middle) is
// dropped, not half used; so is the lifecycle's volume cache that earlier
// skiffs kept in the same directory.
func TestInterruptedMergeDropsTheCache(t *testing.T) {
	f := newSynthFixture(t, "crash")
	first, _ := f.mustBuild("ok 1", "")
	dir := f.p.cacheDir(f.app.ID)
	if err := os.WriteFile(filepath.Join(dir, cacheMerging), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, out := f.mustBuild("ok 2", first.Image); !strings.Contains(out, "deps: installed") {
		t.Errorf("a cache marked as merging was used:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, cacheMerging)); !os.IsNotExist(err) {
		t.Errorf("the merging mark stayed: %v", err)
	}
	// The old format: committed/ and staging/ of the lifecycle's volume
	// cache, and no cache.json.
	for _, d := range []string{"committed", "staging"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, "cache.json"))
	if _, out := f.mustBuild("ok 3", first.Image); !strings.Contains(out, "deps: installed") {
		t.Errorf("a cache of another format was used:\n%s", out)
	}
	for _, d := range []string{"committed", "staging"} {
		if _, err := os.Stat(filepath.Join(dir, d)); !os.IsNotExist(err) {
			t.Errorf("the old cache's %s stayed: %v", d, err)
		}
	}
}

// A build's cached layers are what it wrote, and skiff reads and moves them
// as root: a cached layer that is a symlink out of the layers directory and
// a layer toml that is one are not followed, and nothing on the host is
// read or changed through them.
func TestCacheFollowsNoSymlinkOfTheBuild(t *testing.T) {
	f := newSynthFixture(t, "evil")
	canary := t.TempDir()
	secret := filepath.Join(canary, "secret.toml")
	if err := os.WriteFile(secret, []byte("[types]\ncache = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(canary, "file"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, out := f.mustBuild("hostile-cache "+canary+" "+secret, "")
	if _, out := f.mustBuild("hostile-cache "+canary+" "+secret, first.Image); !strings.Contains(out, "Build finished") {
		t.Fatalf("second build:\n%s", out)
	}
	ents, err := os.ReadDir(canary)
	if err != nil || len(ents) != 2 {
		t.Fatalf("the directory a cached symlink points at changed: %v %v\n%s", ents, err, out)
	}
	kept, _ := os.ReadDir(filepath.Join(f.p.cacheDir(f.app.ID), "layers", "synth_bp"))
	if len(kept) != 0 {
		var names []string
		for _, e := range kept {
			names = append(names, e.Name())
		}
		t.Errorf("symlinked layers were kept: %q", names)
	}
}

// The app image's layers are kept as the uncompressed tars the exporter
// wrote (the lifecycle is built with tools/lifecycle/patches): each blob's
// digest is its diffID and its media type says uncompressed, new layers and
// layers reused from the previous image alike.
func TestExportedLayersAreUncompressed(t *testing.T) {
	f := newSynthFixture(t, "plain")
	first, _ := f.mustBuild("ok 1", "")
	second, _ := f.mustBuild("ok 2", first.Image)
	for _, image := range []string{first.Image, second.Image} {
		img, err := f.p.store.Image(image)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		ids := diffIDs(t, f.p, image)
		for i, l := range m.Layers {
			if l.Digest != ids[i] || !strings.HasSuffix(string(l.MediaType), ".tar") {
				t.Errorf("image %s layer %d: digest %s, diffID %s, media type %s: not an uncompressed tar", image[:19], i, l.Digest, ids[i], l.MediaType)
			}
		}
	}
}
