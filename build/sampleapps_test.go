package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// skiffBuildpacks packages the buildpacks package's tree (as make does)
// with its own command, so this package does not import a sibling.
func skiffBuildpacks(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../buildpacks/cmd/package"); err != nil {
		t.Skip("skiff's buildpacks are not in this tree yet")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "../buildpacks/cmd/package", "-o", dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("package buildpacks: %v", err)
	}
	return dir
}

// tarDir makes a tar stream of a directory, as git archive would.
func tarDir(t *testing.T, dir string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tb := newTarBuilder(&buf)
	if err := tb.tree(dir, "/", false); err != nil {
		t.Fatal(err)
	}
	if err := tb.close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestDefaultBuilderSampleApps(t *testing.T) {
	requireRoot(t)
	bps := skiffBuildpacks(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{Network: testNetwork(t)}) // egress for npm and the Go module proxy
	var out bytes.Buffer
	if err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: bps, CacheDir: debootstrapCache}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// Every sample app of the buildpacks package: those named *-broken,
	// *-no-start or *-fail* must fail with the app's fault and say why;
	// the others must build an image with a web process.
	//
	// The Go and Node.js apps download their toolchain and compile (Go's
	// standard library from scratch): minutes on a loaded machine, so not
	// in -short mode. go-broken is a broken commit pushed to the go app, as
	// a user would push one: it fails with the toolchain and build cache
	// of the build before it, instead of downloading and compiling again.
	downloads := map[string]bool{"go": true, "go-broken": true, "nodejs": true}
	sameApp := map[string]string{"go-broken": "go"}
	built := map[string]bool{}
	apps := "../buildpacks/testdata/apps"
	ents, err := os.ReadDir(apps)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		mustFail := strings.Contains(name, "broken") || strings.Contains(name, "no-start") || strings.Contains(name, "fail")
		t.Run(name, func(t *testing.T) {
			if downloads[name] && testing.Short() {
				t.Skip("downloads a toolchain and compiles: not in -short mode")
			}
			app := name
			if a, ok := sameApp[name]; ok {
				app = a
			}
			var bout bytes.Buffer
			res, err := p.Build(ctx, &skiff.BuildRequest{
				App:     &skiff.App{ID: "sample-" + strings.ToLower(app), Name: app},
				BuildID: fmt.Sprintf("s%d", i), Commit: "abcdef0", Source: tarDir(t, filepath.Join(apps, name)),
			}, &bout)
			t.Logf("output:\n%s", bout.String())
			if built[app] && strings.Contains(bout.String(), "Downloading") {
				t.Errorf("a build of %s after one that passed downloaded again", app)
			}
			if mustFail {
				if skiff.ErrorCode(err) != skiff.EINVALID {
					t.Fatalf("%s: %v, want a build failure", name, err)
				}
				if !strings.Contains(bout.String(), " !     ") {
					t.Errorf("the failure does not say why (no \" !     \" line)")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.ProcessTypes["web"] == "" {
				t.Errorf("no web process: %v", res.ProcessTypes)
			}
			built[app] = true
			if _, ok := rebuildSamples[name]; ok {
				checkRebuild(t, p, &skiff.App{ID: "sample-" + strings.ToLower(app), Name: app}, filepath.Join(apps, name), res)
			}
		})
	}
}
