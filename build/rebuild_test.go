package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// rebuildSamples are the sample apps whose cached rebuild is checked
// against a cold build with the default builder's real buildpacks, and the
// file and line of each that a one-line change edits (the greeting the app
// serves, as bench/build changes it). Go is left out for the time its
// toolchain and compile take; the synthetic builder's
// TestCachedRebuildIsTheColdBuild covers the mechanism for every layer type.
var rebuildSamples = map[string]struct{ file, line string }{
	"nodejs": {"server.js", "hello from"},
	"python": {"app.py", "hello from"},
	"static": {"index.html", "Hello from"},
}

// checkRebuild pushes a one-line change to the sample dir on top of its
// first build: the cached rebuild (previous image and kept cache) must give
// the image a cold build of the same change gives, layer for layer, and
// every layer but the app's own source must keep the first build's digest
// (the toolchains and dependencies the buildpacks reuse unrestored).
func checkRebuild(t *testing.T, p *Platform, app *skiff.App, dir string, first *skiff.BuildResult) {
	t.Helper()
	ch := rebuildSamples[filepath.Base(dir)]
	changed := t.TempDir()
	if err := os.CopyFS(changed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(changed, ch.file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), ch.line) {
		t.Fatalf("%s has no line with %q", ch.file, ch.line)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), ch.line, ch.line+" (changed)", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	build := func(id, prev string) *skiff.BuildResult {
		t.Helper()
		var out strings.Builder
		res, err := p.Build(ctx, &skiff.BuildRequest{
			App: app, BuildID: id, Commit: "abcdef1", Source: tarDir(t, changed), PreviousImage: prev,
		}, &out)
		if err != nil {
			t.Fatalf("build %s: %v\n%s", id, err, out.String())
		}
		return res
	}
	cached := build(app.ID+"-cached", first.Image)
	if err := p.PurgeCache(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	cold := build(app.ID+"-cold", "")
	a, b2, c := diffIDs(t, p, first.Image), diffIDs(t, p, cached.Image), diffIDs(t, p, cold.Image)
	if !slices.Equal(b2, c) {
		t.Errorf("the cached rebuild's layers differ from the cold build's:\ncached %v\ncold   %v", b2, c)
	}
	var diff []string
	for i := range max(len(a), len(b2)) {
		if i >= len(a) || i >= len(b2) || a[i] != b2[i] {
			diff = append(diff, fmt.Sprint(i))
		}
	}
	if len(a) != len(b2) || len(diff) != 1 {
		t.Errorf("layers %v changed between the first build and the rebuild of a one-line change, want one (the app's source):\nfirst   %v\ncached  %v", diff, a, b2)
	}
}
