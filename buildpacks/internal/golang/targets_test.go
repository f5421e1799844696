package golang

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

func TestMainPackages(t *testing.T) {
	app := t.TempDir()
	write := func(name, src string) {
		p := filepath.Join(app, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bc := func(env ...string) *cnb.BuildContext {
		return &cnb.BuildContext{AppDir: app, Env: env, Log: cnb.NewLog(&strings.Builder{})}
	}
	write("lib.go", "package lib\n")
	write("cmd/api/main.go", "package main\n")
	if got, err := mainPackages(bc(), &GoMod{}, "amd64"); err != nil || !slices.Equal(got, []string{"./cmd/api"}) {
		t.Errorf("one cmd: %v %v", got, err)
	}
	write("cmd/worker/main.go", "package main\n")
	if _, err := mainPackages(bc(), &GoMod{}, "amd64"); err == nil || !strings.Contains(err.Error(), "several main packages (./cmd/api, ./cmd/worker)") {
		t.Errorf("two cmds: %v", err)
	}
	if got, err := mainPackages(bc("BP_GO_TARGETS=./cmd/worker:cmd/api"), &GoMod{}, "amd64"); err != nil || !slices.Equal(got, []string{"./cmd/worker", "./cmd/api"}) {
		t.Errorf("BP_GO_TARGETS: %v %v", got, err)
	}
	if got, err := mainPackages(bc("GO_INSTALL_PACKAGE_SPEC=./cmd/api ./cmd/worker"), &GoMod{}, "amd64"); err != nil || !slices.Equal(got, []string{"./cmd/api", "./cmd/worker"}) {
		t.Errorf("GO_INSTALL_PACKAGE_SPEC: %v %v", got, err)
	}
	for _, bad := range []string{"-toolexec=x", "../other"} {
		if _, err := mainPackages(bc("BP_GO_TARGETS="+bad), &GoMod{}, "amd64"); err == nil {
			t.Errorf("BP_GO_TARGETS=%s accepted", bad)
		}
	}
	os.RemoveAll(filepath.Join(app, "cmd"))
	if _, err := mainPackages(bc(), &GoMod{}, "amd64"); err == nil || !strings.Contains(err.Error(), "no main package") {
		t.Errorf("library: %v", err)
	}
	write("main.go", "package main\n")
	os.Remove(filepath.Join(app, "lib.go"))
	if got, err := mainPackages(bc(), &GoMod{}, "amd64"); err != nil || !slices.Equal(got, []string{"."}) {
		t.Errorf("root main: %v %v", got, err)
	}
}

func TestBinaries(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"app", "api"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o755)
	}
	got, err := binaries(dir, []string{".", "./cmd/api"}, "example.com/app/v2")
	if err != nil || !slices.Equal(got, []string{filepath.Join(dir, "app"), filepath.Join(dir, "api")}) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := binaries(dir, []string{"./cmd/missing"}, "x"); err == nil {
		t.Error("a missing binary was not reported")
	}
}

func TestProxyURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://proxy.golang.org,direct":      "https://proxy.golang.org",
		"direct|https://corp.example/goproxy/": "https://corp.example/goproxy",
		"off,http://127.0.0.1:3000|direct":     "http://127.0.0.1:3000",
	} {
		if got, err := proxyURL(in); err != nil || got != want {
			t.Errorf("proxyURL(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"direct", "off", ""} {
		if _, err := proxyURL(bad); err == nil {
			t.Errorf("proxyURL(%q) accepted", bad)
		}
	}
	for env, skip := range map[string]bool{"GOSUMDB=off": true, "GONOSUMDB=golang.org": true, "GOPRIVATE=golang.org/*": true, "GONOSUMDB=example.com": false, "GONOSUMDB=*.org": true, "GOPRIVATE=example.com,golang.org/toolchain": true, "GONOSUMDB=golang.org/x": false, "": false} {
		if got := sumdbSkipped(cnb.Env{env}); got != skip {
			t.Errorf("sumdbSkipped(%s) = %v", env, got)
		}
	}
}
