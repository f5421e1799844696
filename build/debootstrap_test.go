package build

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	if !strings.Contains(out.String(), "Using the cached Debian") || !strings.Contains(out.String(), "Using the cached build packages") {
		t.Errorf("second builder:create did not use the cache:\n%s", out.String())
	}
	// The build image is the run image's root file system with the build
	// packages on top: one shared bottom layer.
	bottom := func(ref string) v1.Hash {
		img, err := p.store.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		d, _ := ls[0].Digest()
		return d
	}
	if r, b := bottom(DefaultRunImage), bottom(DefaultBuildBase); r != b {
		t.Errorf("run image's bottom layer %s, build image's %s: not shared", r, b)
	}
	bi, err := p.builder(ctx, DefaultBuilder)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"usr/bin/git", "usr/bin/xz", "usr/share/zoneinfo/UTC"} {
		if _, err := os.Stat(filepath.Join(bi.Rootfs, f)); err != nil {
			t.Errorf("the build image lacks /%s: %v", f, err)
		}
	}
	for _, f := range []string{"etc/dpkg/dpkg.cfg.d/" + unsafeIOConf, "var/cache/apt/pkgcache.bin"} {
		if _, err := os.Lstat(filepath.Join(bi.Rootfs, f)); err == nil {
			t.Errorf("the build image keeps /%s", f)
		}
	}
	if lists, _ := filepath.Glob(filepath.Join(bi.Rootfs, "var/lib/apt/lists/*_Packages")); len(lists) > 0 {
		t.Errorf("the build image keeps apt's lists: %v", lists)
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

// Extra certificate authorities are in both images, each bundle the
// image's own Debian bundle with them added.
func TestDefaultBuilderExtraCACerts(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	pem := "-----BEGIN CERTIFICATE-----\nMIIBskiffTEST\n-----END CERTIFICATE-----\n"
	caFile := filepath.Join(t.TempDir(), "corp.crt")
	if err := os.WriteFile(caFile, []byte(pem), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: synthBuildpacks(t), CacheDir: debootstrapCache, ExtraCACerts: []string{caFile}}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, ref := range []string{DefaultRunImage, DefaultBuildBase} {
		img, err := p.store.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		rc, err := ls[len(ls)-1].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(tr)
			files[h.Name] = string(b)
		}
		rc.Close()
		bundle := files["etc/ssl/certs/ca-certificates.crt"]
		if files["usr/local/share/ca-certificates/corp.crt"] != pem || !strings.HasSuffix(bundle, pem) || !strings.Contains(bundle, "-----BEGIN CERTIFICATE-----\nMII") || len(bundle) < 100000 {
			t.Errorf("%s: the top layer holds %d bytes of bundle and %q", ref, len(bundle), files["usr/local/share/ca-certificates/corp.crt"])
		}
	}
}

// The build packages are installed with apt on the run root file system:
// a package only the build image asks for is in it and not in the run
// image, whose files the build image shares.
func TestBuildPackagesOnTheRunImage(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	p := newTestPlatform(t, Config{})
	var out bytes.Buffer
	pkgs := append(slices.Clone(DefaultBuildPackages), "file")
	if err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: synthBuildpacks(t), CacheDir: debootstrapCache, BuildPackages: pkgs}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	bi, err := p.builder(ctx, DefaultBuilder)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bi.Rootfs, "usr/bin/file")); err != nil {
		t.Errorf("the build image lacks the package it asked for: %v\n%s", err, out.String())
	}
	run, err := p.store.Image(DefaultRunImage)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := run.Layers()
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "usr/bin/file" {
			t.Error("the run image has the build image's package")
		}
	}
}
