// Package golang is the Go buildpack: for an app with a go.mod it installs
// the Go toolchain go.mod asks for (from the Go module proxy's
// golang.org/toolchain module, verified against the checksum database),
// builds the main package(s) into a binary in a launch layer (static unless
// a dependency uses cgo, see cgoSetting) with the module and build caches kept in cache layers, and
// makes the first binary the web process.
package golang

import (
	"errors"
	"fmt"
	gobuild "go/build"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
)

// Buildpack is the Go buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/go",
	Name:        "Go",
	Description: "Go modules: the toolchain go.mod names, cgo when a dependency needs it",
	Detect:      detect,
	Build:       build,
}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	fi, err := os.Stat(dc.AppFile("go.mod"))
	if err != nil || !fi.Mode().IsRegular() {
		return nil, nil
	}
	return &cnb.BuildPlan{
		Provides: []cnb.Provide{{Name: "go"}},
		Requires: []cnb.Require{{Name: "go"}},
	}, nil
}

func build(bc *cnb.BuildContext) error {
	bc.Log.Step("Go app detected")
	data, err := os.ReadFile(bc.AppFile("go.mod"))
	if err != nil {
		return err
	}
	mod, err := ParseGoMod(data)
	if err != nil {
		return cnb.Failf("%v", err).Hint("Fix go.mod (go mod edit -go=1.25 sets the go line), commit it and push again.")
	}
	arch := bc.Env.Get("CNB_TARGET_ARCH")
	if arch == "" {
		arch = runtime.GOARCH
	}
	// Fail on an unbuildable layout before downloading anything.
	targets, err := mainPackages(bc, mod, arch)
	if err != nil {
		return err
	}
	goproxy := bc.Env.Get("GOPROXY")
	if goproxy == "" {
		goproxy = DefaultGOPROXY
	}
	goroot, version, err := installGo(bc, mod, goproxy, arch)
	if err != nil {
		return err
	}

	modCache, err := bc.CacheLayer("go-mod")
	if err != nil {
		return err
	}
	buildCache, err := bc.CacheLayer("go-build")
	if err != nil {
		return err
	}
	app, err := bc.Layer("app")
	if err != nil {
		return err
	}
	if err := app.Reset(); err != nil {
		return err
	}
	binDir := filepath.Join(app.Path, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	env := bc.Env.PrependPath(filepath.Join(goroot, "bin")).With(
		"GOROOT=", // the toolchain finds its own root; a stray GOROOT would mix versions
		"GOTOOLCHAIN=local",
		"GOENV=off",
		"GOOS=linux",
		"GOARCH="+arch,
		"GOPROXY="+goproxy,
		"GOMODCACHE="+modCache,
		"GOCACHE="+buildCache,
		"GOPATH="+filepath.Join(modCache, ".gopath"),
	)

	bc.Log.Step("Building %s", strings.Join(targets, " "))
	cgo, err := cgoSetting(bc, env, targets)
	if err != nil {
		return err
	}
	env = env.With("CGO_ENABLED=" + cgo)
	args := []string{"build", "-trimpath", "-buildvcs=false", "-modcacherw", "-o", binDir + "/"}
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: "go", Args: append(args, targets...), Dir: bc.AppDir, Env: env}); err != nil {
		if cnb.ExitCode(err) > 0 {
			return cnb.Failf("go build failed (exit status %d); fix the errors above and push again", cnb.ExitCode(err))
		}
		return err
	}
	bc.Log.Done(start)
	bins, err := binaries(binDir, targets, mod.Module)
	if err != nil {
		return err
	}
	if err := app.Commit(cnb.LayerTypes{Launch: true}, map[string]any{"go": version, "targets": targets, "cgo": cgo}); err != nil {
		return err
	}
	for _, b := range bins {
		bc.Log.Detail("Built %s", filepath.Base(b))
	}
	bc.AddProcess(cnb.Process{Type: "web", Command: []string{bins[0]}, Default: true})
	bc.Log.Detail("Process type web -> %s", filepath.Base(bins[0]))
	return nil
}

type goMeta struct {
	Layout   string `toml:"layout"`
	Want     string `toml:"want"`
	Version  string `toml:"version"`
	Arch     string `toml:"arch"`
	Proxy    string `toml:"proxy"`
	Resolved string `toml:"resolved"` // RFC 3339
}

// installGo makes the go layer hold the toolchain go.mod asks for and
// returns its GOROOT and version.
func installGo(bc *cnb.BuildContext, mod *GoMod, goproxy, arch string) (string, string, error) {
	want, err := ChooseFor(mod, strings.TrimSpace(bc.Env.Get("GOVERSION")))
	if err != nil {
		return "", "", err
	}
	proxy, err := proxyURL(goproxy)
	if err != nil {
		return "", "", err
	}
	layer, err := bc.Layer("go")
	if err != nil {
		return "", "", err
	}
	wantKey := fmt.Sprintf("%+v", Want{Exact: want.Exact, Minor: want.Minor, Newest: want.Newest})
	var old goMeta
	hasOld, _ := layer.Metadata(&old)
	intact := hasOld && old.Layout == layoutVersion && old.Arch == arch && layer.HasContents() &&
		cnb.Exists(filepath.Join(layer.Path, "bin", "go"))
	commit := func(m goMeta) error {
		return layer.Commit(cnb.LayerTypes{Build: true, Cache: true}, m)
	}

	bc.Log.Step("Installing Go (%s)", want.Source)
	chosen := func(version string) error {
		v, _ := ParseGoVersion(version)
		bc.Log.Detail("%s", want.Reason(v))
		return want.CheckModule(mod, v)
	}
	// An exact version never changes; a "newest of" is looked up again daily.
	if intact && old.Want == wantKey && (!want.Exact.IsZero() || cnb.Fresh(old.Resolved, resolveTTL)) {
		if err := chosen(old.Version); err != nil {
			return "", "", err
		}
		bc.Log.Detail("Using cached Go %s", old.Version)
		return layer.Path, old.Version, commit(old)
	}
	client := fetch.New("skiff-buildpacks")
	available, err := listToolchains(bc.Context, client, proxy, arch)
	if err != nil {
		if v, ok := ParseGoVersion(old.Version); intact && old.Want == wantKey && ok {
			bc.Log.Warn("cannot reach the Go module proxy (%v); using the cached Go %s", err, v)
			return layer.Path, old.Version, commit(old)
		}
		return "", "", err
	}
	v, ok := want.pick(available)
	if !ok {
		return "", "", cnb.Failf("The Go module proxy has no Go toolchain for %s (linux/%s); it has %s.", want.Source, arch, describeAvailable(available)).
			Hint("Ask for a released Go, like go 1.25 (its newest release) or go 1.25.4, in go.mod or GOVERSION.")
	}
	if err := chosen(v.String()); err != nil {
		return "", "", err
	}
	m := goMeta{Layout: layoutVersion, Want: wantKey, Version: v.String(), Arch: arch, Proxy: proxy, Resolved: cnb.Timestamp()}
	if intact && old.Version == m.Version {
		bc.Log.Detail("Using cached Go %s", m.Version)
		return layer.Path, m.Version, commit(m)
	}
	start := time.Now()
	if err := layer.Reset(); err != nil {
		return "", "", err
	}
	bc.Log.Detail("Downloading Go %s (%s)", m.Version, zipVersion(v, arch))
	if err := downloadToolchain(bc, client, proxy, v, arch, layer.Path, layer.Path); err != nil {
		return "", "", fmt.Errorf("install Go %s: %w", m.Version, err)
	}
	bc.Log.Done(start)
	return layer.Path, m.Version, commit(m)
}

// mainPackages returns the packages to build: BP_GO_TARGETS (Paketo's
// setting, ':'-separated), GO_INSTALL_PACKAGE_SPEC (Heroku's,
// space-separated) or go.mod's "// +heroku install" directive when set; else the app's root when it is a main package;
// else its one main package under cmd/.
func mainPackages(bc *cnb.BuildContext, mod *GoMod, arch string) ([]string, error) {
	for _, s := range []struct{ name, sep string }{{"BP_GO_TARGETS", ":"}, {"GO_INSTALL_PACKAGE_SPEC", " "}, {"go.mod's // +heroku install", " "}} {
		v := strings.TrimSpace(bc.Env.Get(s.name))
		if s.name[0] == 'g' {
			v = strings.Join(mod.HerokuInstall, " ")
		}
		if v == "" {
			continue
		}
		var targets []string
		for _, t := range strings.Split(v, s.sep) {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if strings.HasPrefix(t, "-") || strings.Contains(t, "..") {
				return nil, cnb.Failf("%s: %q is not a package path", s.name, t).Hint("Name packages like ./cmd/server.")
			}
			if !strings.HasPrefix(t, "./") && t != "." {
				t = "./" + t
			}
			targets = append(targets, t)
		}
		if len(targets) > 0 {
			bc.Log.Detail("Building %s from %s", strings.Join(targets, " "), s.name)
			return targets, nil
		}
	}
	if isMain(bc.AppDir, arch) {
		return []string{"."}, nil
	}
	var mains []string
	entries, _ := os.ReadDir(bc.AppFile("cmd"))
	for _, e := range entries {
		if e.IsDir() && isMain(filepath.Join(bc.AppDir, "cmd", e.Name()), arch) {
			mains = append(mains, "./cmd/"+e.Name())
		}
	}
	switch len(mains) {
	case 1:
		return mains, nil
	case 0:
		return nil, cnb.Failf("no main package: the app's root is not package main and cmd/ has none").
			Hint("Put package main at the root or in cmd/<name>, or name the packages to build in BP_GO_TARGETS.")
	}
	sort.Strings(mains)
	return nil, cnb.Failf("several main packages (%s): which one is the app?", strings.Join(mains, ", ")).
		Hint("Set BP_GO_TARGETS=%s (':'-separated; the first is the web process) as a build-time config var.", mains[0])
}

// isMain reports whether dir holds a main package for linux/arch, build
// constraints applied (a "//go:build ignore" generator in a library's root
// does not make it a program).
func isMain(dir, arch string) bool {
	ctx := gobuild.Default
	ctx.GOOS, ctx.GOARCH, ctx.CgoEnabled = "linux", arch, false
	pkg, err := ctx.ImportDir(dir, gobuild.ImportComment)
	return err == nil && pkg.Name == "main"
}

// binaries returns the paths of the built binaries, in target order.
func binaries(binDir string, targets []string, module string) ([]string, error) {
	var out []string
	for _, t := range targets {
		name := path.Base(t)
		if t == "." {
			name = path.Base(module)
			if isMajorSuffix(name) {
				name = path.Base(path.Dir(module))
			}
		}
		p := filepath.Join(binDir, name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("go build wrote no %s for %s: %w", name, t, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no binaries built")
	}
	return out, nil
}

func isMajorSuffix(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
