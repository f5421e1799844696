package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestMirrorFromSources(t *testing.T) {
	deb822 := "Types: deb\n# comment\nURIs: http://deb.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.example.org/debian-security\nSuites: bookworm-security\n"
	oneLine := "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian/ bookworm main\ndeb http://security.example.org/debian-security bookworm-security main\n"
	for _, c := range []struct{ text, want string }{
		{deb822, "http://deb.example.org/debian"},
		{oneLine, "http://ftp.example.org/debian"},
		{"deb https://packages.example.com/apt cloud-sdk-bookworm main\n", ""},
		{"", ""},
	} {
		if got := mirrorFromSources(c.text, "bookworm"); got != c.want {
			t.Errorf("mirrorFromSources(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// debootstrapCache persists between test runs on one machine, so only the
// first run pays for debootstrap.
const debootstrapCache = "/var/cache/skiff-test/debootstrap"

func TestDefaultBuilderFromDebootstrap(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap is not installed (apt-get install debootstrap)")
	}
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	var out bytes.Buffer
	err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: synthBuildpacks(t), CacheDir: debootstrapCache}, &out)
	t.Logf("builder:create output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{DefaultBuilder, DefaultRunImage, DefaultBuildBase} {
		if _, err := p.store.Resolve(ref); err != nil {
			t.Errorf("%s missing: %v", ref, err)
		}
	}
	// Idempotent, and fast the second time.
	out.Reset()
	if err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: synthBuildpacks(t), CacheDir: debootstrapCache}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Using the cached Debian") {
		t.Errorf("second builder:create did not use the cache:\n%s", out.String())
	}

	var bout bytes.Buffer
	res, err := p.Build(ctx, &skiff.BuildRequest{
		App: &skiff.App{ID: "deb1", Name: "debian-app"}, BuildID: "d1", Commit: "abcdef0",
		Source: tarOf(t, map[string]string{"synth.txt": "ok 1"}),
	}, &bout)
	t.Logf("build output:\n%s", bout.String())
	if err != nil {
		log, _ := os.ReadFile(p.logPath("deb1", "d1"))
		t.Fatalf("%v\n%s", err, log)
	}
	img, err := p.store.Image(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels["io.buildpacks.base.distro.name"] != "debian" {
		t.Errorf("app image labels %v: not on the Debian run image", cf.Config.Labels)
	}
}
