package build

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/layer"
)

// The image a build exports starts: its layers unpacked in order make a
// root file system whose default process, through the CNB launcher, runs
// the app the buildpack installed. (Running apps for real is the runtime's;
// this guards what the build hands it.)
func TestExportedImageRuns(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	builder := synthBuilder(t, p)
	res, err := p.Build(ctx, &skiff.BuildRequest{App: &skiff.App{ID: "runs", Name: "runs"}, BuildID: "r1", Builder: builder,
		Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.store.Image(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	root := openDataDir(t)
	os.Chmod(root, 0o755)
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = layer.Extract(ctx, rc, root, layer.Options{Whiteouts: layer.ApplyWhiteouts})
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareBuilderRootfs(root); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/cnb/process/web" || cf.Config.User != "1000:1000" {
		t.Errorf("entrypoint %v, user %q", cf.Config.Entrypoint, cf.Config.User)
	}
	var out bytes.Buffer
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	code, remove, err := p.sandbox.run(rctx, &sandboxSpec{ID: "run-r1", Bundle: t.TempDir(), Rootfs: root,
		Args: cf.Config.Entrypoint, Env: cf.Config.Env, Cwd: cf.Config.WorkingDir, Limits: p.cfg.Limits}, &out)
	remove()
	if err != nil || code != 0 || !strings.Contains(out.String(), "synth app running") {
		t.Fatalf("web process: code %d, %v\n%s", code, err, out.String())
	}
	os.RemoveAll(root)
}
