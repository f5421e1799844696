package build

import (
	"bytes"
	"context"
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
	p := newTestPlatform(t, Config{})
	var out bytes.Buffer
	if err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: bps, CacheDir: debootstrapCache}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	apps := "../buildpacks/testdata/apps"
	cases := []struct {
		app     string
		web     string // substring of the web command; "" when the build must fail
		wantOut string
	}{
		{app: "static", web: "static"},
		{app: "procfile", web: ""},
		{app: "procfile-broken", wantOut: "Procfile"},
	}
	for i, c := range cases {
		t.Run(c.app, func(t *testing.T) {
			dir := filepath.Join(apps, c.app)
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("no sample app %s", c.app)
			}
			var bout bytes.Buffer
			res, err := p.Build(ctx, &skiff.BuildRequest{
				App:     &skiff.App{ID: "sample-" + c.app, Name: c.app},
				BuildID: "s" + string(rune('a'+i)), Commit: "abcdef0", Source: tarDir(t, dir),
			}, &bout)
			t.Logf("output:\n%s", bout.String())
			if strings.HasSuffix(c.app, "-broken") {
				if skiff.ErrorCode(err) != skiff.EINVALID {
					t.Fatalf("broken app: %v, want a build failure", err)
				}
				if !strings.Contains(bout.String(), c.wantOut) {
					t.Errorf("output lacks %q", c.wantOut)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := res.ProcessTypes["web"]; !ok {
				t.Errorf("no web process: %v", res.ProcessTypes)
			}
			if !strings.Contains(res.ProcessTypes["web"], c.web) {
				t.Errorf("web = %q, want it to mention %q", res.ProcessTypes["web"], c.web)
			}
		})
	}
}
