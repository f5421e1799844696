package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestSyntheticBuildColdAndWarm(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	builder := synthBuilder(t, p)
	app := &skiff.App{ID: "app1", Name: "myapp"}

	var out1 bytes.Buffer
	res1, err := p.Build(ctx, &skiff.BuildRequest{
		App: app, BuildID: "b1", Commit: "0123456789abcdef", Builder: builder,
		Source: tarOf(t, map[string]string{"synth.txt": "ok 1\n"}),
		Env:    map[string]string{"SYNTH_VAR": "hello"},
	}, &out1)
	t.Logf("cold build output:\n%s", out1.String())
	if err != nil {
		log, _ := os.ReadFile(p.logPath("app1", "b1"))
		t.Fatalf("%v; log:\n%s", err, log)
	}
	for _, want := range []string{"-----> Building myapp (commit 0123456) with", "-----> synth buildpack", "deps: installed", "platform/env/SYNTH_VAR=hello", "-----> Build finished in"} {
		if !strings.Contains(out1.String(), want) {
			t.Errorf("cold output lacks %q", want)
		}
	}
	if res1.ProcessTypes["web"] == "" || res1.ProcessTypes["worker"] == "" || res1.DefaultProcess != "web" {
		t.Errorf("process types %v, default %q", res1.ProcessTypes, res1.DefaultProcess)
	}
	if res1.Phases.Build <= 0 || res1.Phases.Export <= 0 || res1.Phases.Detect <= 0 {
		t.Errorf("phases %+v", res1.Phases)
	}
	if strings.Contains(out1.String(), "uid 0") {
		t.Error("buildpack ran as root")
	}

	var out2 bytes.Buffer
	res2, err := p.Build(ctx, &skiff.BuildRequest{
		App: app, BuildID: "b2", Commit: "1123456789abcdef", Builder: builder,
		Source:        tarOf(t, map[string]string{"synth.txt": "ok 2\n"}),
		PreviousImage: res1.Image,
	}, &out2)
	t.Logf("warm build output:\n%s", out2.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out2.String(), "deps: reused from cache") {
		t.Error("warm build did not restore the cached layer")
	}
	if res2.Image == res1.Image {
		t.Error("a changed app produced the same image")
	}
	log, _ := os.ReadFile(p.logPath("app1", "b2"))
	if !strings.Contains(string(log), "Reusing layer 'synth/bp:deps'") {
		t.Errorf("export did not reuse the deps layer from the previous image; log:\n%s", log)
	}
	// Both images share the run image's and the deps layer's blobs.
	b1, _ := p.store.ImageBlobs(res1.Image)
	b2, _ := p.store.ImageBlobs(res2.Image)
	shared := 0
	for _, a := range b1 {
		for _, b := range b2 {
			if a == b {
				shared++
			}
		}
	}
	if shared < 3 {
		t.Errorf("images share %d blobs, want the run layer, deps layer and more", shared)
	}
	// Nothing left of the builds' scratch space.
	if ents, _ := os.ReadDir(filepath.Join(p.cfg.DataDir, "tmp", "builds")); len(ents) != 0 {
		t.Errorf("scratch left behind: %v", ents)
	}
}
