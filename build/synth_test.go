package build

import (
	"bytes"
	"context"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

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
	// The build user is no host user: its files (the kept cache layers)
	// belong to an id of the build user namespace's range.
	p.settles.Wait() // the cache is kept once the build has settled
	fi, err := os.Stat(filepath.Join(p.cacheDir(app.ID), "layers", "synth_bp", "deps"))
	if err != nil {
		t.Fatal(err)
	}
	owner := int(fi.Sys().(*syscall.Stat_t).Uid)
	if owner != p.cfg.UIDBase+1000 {
		t.Errorf("cache owned by uid %d, want %d", owner, p.cfg.UIDBase+1000)
	}
	if u, err := user.LookupId(strconv.Itoa(owner)); err == nil {
		t.Errorf("build uid %d is host user %s", owner, u.Username)
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
	// Garbage collection keeps the current release's image whole and the
	// builder usable, and drops the older image.
	if err := p.CollectGarbage(ctx, []string{res2.Image}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.Image(res1.Image); err == nil {
		t.Error("the unreferenced first image survived GC")
	}
	img2, err := p.store.Image(res2.Image)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img2.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("kept image lost a layer: %v", err)
		}
		rc.Close()
	}
	if _, err := p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: "b3", Builder: builder,
		Source: tarOf(t, map[string]string{"synth.txt": "ok 3\n"}), PreviousImage: res2.Image}, &bytes.Buffer{}); err != nil {
		t.Fatalf("build after GC: %v", err)
	}
	// Nothing left of the builds' scratch space, once they have settled.
	p.settles.Wait()
	if ents, _ := os.ReadDir(filepath.Join(p.cfg.DataDir, "tmp", "builds")); len(ents) != 0 {
		t.Errorf("scratch left behind: %v", ents)
	}
}

func TestHostileSourceTree(t *testing.T) {
	requireRoot(t)
	canary := filepath.Join(os.TempDir(), "skiff-canary-"+t.Name())
	os.Remove(canary)
	p := newTestPlatform(t, Config{})
	builder := synthBuilder(t, p)
	var out bytes.Buffer
	res, err := p.Build(context.Background(), &skiff.BuildRequest{
		App: &skiff.App{ID: "hostile", Name: "hostile"}, BuildID: "h1", Builder: builder,
		Source: tarOf(t, map[string]string{
			"synth.txt":           "ok",
			"shadow":              "-> /etc/shadow",
			"up":                  "-> ../../../..",
			"up/" + canary[1:]:    "written through a symlink",
			"/abs-canary":         "absolute",
			"../../dotdot-canary": "dotdot",
		}),
	}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if _, err := os.Lstat(canary); err == nil {
		t.Fatal("the source tree wrote outside the workspace")
	}
	for _, f := range []string{"/abs-canary", "/dotdot-canary"} {
		if _, err := os.Lstat(f); err == nil {
			os.Remove(f)
			t.Errorf("%s written on the host", f)
		}
	}
	if res.Image == "" {
		t.Error("no image")
	}
}

func TestPurgeCacheAndBuildLog(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	builder := synthBuilder(t, p)
	app := &skiff.App{ID: "purge", Name: "purge"}
	build := func(id string) string {
		var out bytes.Buffer
		if _, err := p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: id, Builder: builder,
			Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	build("c1")
	if out := build("c2"); !strings.Contains(out, "reused from cache") {
		t.Fatalf("cache not used:\n%s", out)
	}
	if err := p.PurgeCache(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if out := build("c3"); !strings.Contains(out, "deps: installed") {
		t.Errorf("cache survived the purge:\n%s", out)
	}
	rc, err := p.BuildLog(app.ID, "c3")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var log bytes.Buffer
	log.ReadFrom(rc)
	if !strings.Contains(log.String(), "===> EXPORTING") || !strings.Contains(log.String(), "build finished") ||
		!regexp.MustCompile(`platform: prepare [\d.]+s, create [\d.]+s, inputs [\d.]+s, start [\d.]+s, lifecycle [\d.]+s, import [\d.]+s \(the lifecycle's phases [\d.]+s\)`).MatchString(log.String()) {
		t.Errorf("log:\n%s", log.String())
	}
	// The lifecycle's phases end with it: skiff's import and cleanup after
	// it are no part of its export.
	if m := regexp.MustCompile(`lifecycle ([\d.]+)s, .*phases ([\d.]+)s`).FindStringSubmatch(log.String()); m != nil {
		run, _ := strconv.ParseFloat(m[1], 64)
		phases, _ := strconv.ParseFloat(m[2], 64)
		if phases > run+0.01 {
			t.Errorf("the lifecycle's phases took %.2fs of its %.2fs run", phases, run)
		}
	}
	// Each of the lifecycle's phases, to the millisecond (bench/build's -ms
	// reads them), and together they are the phases' total.
	if m := regexp.MustCompile(`lifecycle: analyze (\d+\.\d{3})s, detect (\d+\.\d{3})s, restore (\d+\.\d{3})s, build (\d+\.\d{3})s, export (\d+\.\d{3})s\n`).FindStringSubmatch(log.String()); m == nil {
		t.Errorf("no lifecycle line to the millisecond in the log:\n%s", log.String())
	} else if total := regexp.MustCompile(`phases (\d+\.\d{3})s\)`).FindStringSubmatch(log.String()); total == nil {
		t.Errorf("no phases' total to the millisecond in the log:\n%s", log.String())
	} else {
		var sum float64
		for _, v := range m[1:] {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
		if all, _ := strconv.ParseFloat(total[1], 64); sum < all-0.003 || sum > all+0.003 {
			t.Errorf("the lifecycle's phases add up to %.3fs, the log's total is %.3fs", sum, all)
		}
	}
	if _, err := p.BuildLog(app.ID, "nope"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Errorf("missing log: %v", err)
	}
	if _, err := p.BuildLog("../x", "c3"); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("bad app id: %v", err)
	}
}

func TestPinnedBuildpacksAndProjectTOML(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	builder := synthBuilder(t, p)
	app := &skiff.App{ID: "pinned", Name: "pinned"}
	project := "[_]\nschema-version = \"0.2\"\n[[io.buildpacks.build.env]]\nname = \"SYNTH_VAR\"\nvalue = \"from-project\"\n[io.buildpacks]\nexclude = [\"*.secret\"]\n"
	var out bytes.Buffer
	_, err := p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: "p1", Builder: builder, Buildpacks: []string{"synth/bp@1.0.0"},
		Source: tarOf(t, map[string]string{"synth.txt": "ok", "project.toml": project, "key.secret": "s"})}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "platform/env/SYNTH_VAR=from-project") {
		t.Errorf("project.toml's build env did not reach the build:\n%s", out.String())
	}
	// Config vars win over project.toml.
	out.Reset()
	if _, err := p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: "p2", Builder: builder, Env: map[string]string{"SYNTH_VAR": "from-config"},
		Source: tarOf(t, map[string]string{"synth.txt": "ok", "project.toml": project})}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "platform/env/SYNTH_VAR=from-config") {
		t.Errorf("config var did not override project.toml:\n%s", out.String())
	}
	for _, pin := range []string{"nope/missing", "synth/bp@9.9.9", "docker://evil/bp", "../x"} {
		_, err := p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: "p3", Builder: builder, Buildpacks: []string{pin},
			Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &bytes.Buffer{})
		if skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("pin %q: %v, want invalid", pin, err)
		}
	}
	if bps, err := p.BuilderBuildpacks(builder); err != nil || len(bps) != 1 || bps[0] != "synth/bp@1.0.0" {
		t.Errorf("BuilderBuildpacks = %v, %v", bps, err)
	}
	_, err = p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: "p4", Builder: builder, Buildpacks: []string{"nope/missing"},
		Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "synth/bp") {
		t.Errorf("error does not list the builder's buildpacks: %v", err)
	}
}

func TestRunImageMustNotRunAsRoot(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{})
	synthBuilder(t, p)
	h := putBase(t, p.store, "skiff.local/run:rootly", nil)
	img, _ := p.store.Image(h.String())
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.User = ""
	img, _ = mutate.ConfigFile(img, cf)
	if _, err := p.store.Put(context.Background(), "skiff.local/run:rootly", img); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateBuilderImage(context.Background(), BuilderSpec{Ref: "skiff.local/builder:rootly", BaseRef: "skiff.local/build-base:synth",
		RunRef: "skiff.local/run:rootly", UID: 1000, GID: 1000, BuildpacksDir: synthBuildpacks(t)}); err != nil {
		t.Fatal(err)
	}
	_, err := p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: "rootly", Name: "rootly"}, BuildID: "x1",
		Builder: "skiff.local/builder:rootly", Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &bytes.Buffer{})
	if skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "non-root user") {
		t.Fatalf("err = %v", err)
	}
}
