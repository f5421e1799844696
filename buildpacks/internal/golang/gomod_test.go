package golang

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseGoMod(t *testing.T) {
	m, err := ParseGoMod([]byte(`// comment
module "example.com/app/v2" // quoted
go 1.25 // language
toolchain go1.25.4
require (
	go 1.99 // inside a block: not the go line
	example.com/x v1.0.0
)
`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Module != "example.com/app/v2" || m.Go.String() != "1.25" || m.Toolchain.String() != "1.25.4" {
		t.Errorf("%+v", m)
	}
	for in, want := range map[string]string{
		"go 1.x\n":                 `line 1: invalid go version "1.x"`,
		"module a\ngo 2.0\n":       `line 2: invalid go version "2.0"`,
		"go 1.21.0rc1\n":           "invalid go version",
		"toolchain 1.25\n":         `invalid toolchain "1.25"`,
		"toolchain go1.25 extra\n": "invalid toolchain",
		"go\n":                     "want go 1.N",
		"\xff\n":                   "not UTF-8",
	} {
		if _, err := ParseGoMod([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestChoose(t *testing.T) {
	avail := []GoVersion{}
	for _, s := range []string{"1.21.0", "1.24.9", "1.25rc1", "1.25.0", "1.25.4", "1.26rc2", "1.26.0", "1.26.1"} {
		v, _ := ParseGoVersion(s)
		avail = append(avail, v)
	}
	for _, tc := range []struct{ mod, want string }{
		{"go 1.25.4", "1.25.4"},
		{"go 1.25", "1.25.4"},
		{"go 1.26rc2", "1.26rc2"},
		{"go 1.16", "1.26.1"},
		{"", "1.26.1"},
		{"go 1.24\ntoolchain go1.25.0", "1.25.0"},
		{"go 1.25.4\ntoolchain go1.25.0", "1.25.4"}, // a toolchain older than go is ignored
		{"go 1.27", ""},
		{"go 1.25.9", ""},
	} {
		m, err := ParseGoMod([]byte(tc.mod))
		if err != nil {
			t.Fatal(err)
		}
		v, ok := Choose(m).pick(avail)
		if got := v.String(); (tc.want == "" && ok) || (tc.want != "" && got != tc.want) {
			t.Errorf("%q: picked %s (%v), want %q", tc.mod, got, ok, tc.want)
		}
	}
}

func TestGoVersionOrder(t *testing.T) {
	order := []string{"1.20", "1.20.1", "1.21", "1.21beta1", "1.21rc1", "1.21rc2", "1.21.0", "1.21.1", "1.22.0"}
	for i := 1; i < len(order); i++ {
		a, _ := ParseGoVersion(order[i-1])
		b, _ := ParseGoVersion(order[i])
		if a.Compare(b) >= 0 {
			t.Errorf("%s should sort before %s", a, b)
		}
	}
}

func TestIsMain(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib.go", "package lib\n")
	write("gen.go", "//go:build ignore\n\npackage main\n")
	write("cmd/api/main.go", "package main\nfunc main() {}\n")
	write("cmd/api/main_test.go", "package main\n")
	write("cmd/tool/x_windows.go", "package main\n")
	if isMain(dir, "amd64") {
		t.Error("a library with an ignored generator counted as main")
	}
	if !isMain(filepath.Join(dir, "cmd/api"), "amd64") {
		t.Error("cmd/api is main")
	}
	if isMain(filepath.Join(dir, "cmd/tool"), "amd64") {
		t.Error("a windows-only package counted for linux")
	}
}

func TestZipHash1(t *testing.T) {
	// The h1 of github.com/google/uuid v1.6.0, as go.sum records it, over a
	// zip the go command's module cache keeps.
	zip := filepath.Join(os.Getenv("HOME"), "go/pkg/mod/cache/download/github.com/google/uuid/@v/v1.6.0.zip")
	if gm := os.Getenv("GOMODCACHE"); gm != "" {
		zip = filepath.Join(gm, "cache/download/github.com/google/uuid/@v/v1.6.0.zip")
	}
	if _, err := os.Stat(zip); err != nil {
		t.Skip("github.com/google/uuid v1.6.0 is not in the module cache")
	}
	got, err := zipHash1(zip)
	if err != nil || got != "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=" {
		t.Errorf("zipHash1 = %q, %v", got, err)
	}
}

func FuzzParseGoMod(f *testing.F) {
	for _, s := range []string{"module a\ngo 1.25\n", "go 1.21rc1\ntoolchain go1.22.0\n", "require (\n go 1.2\n)\n", "go 1.x", "toolchain default", "module \"a b\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseGoMod(data)
		if err != nil {
			return
		}
		for _, v := range []GoVersion{m.Go, m.Toolchain} {
			if v.IsZero() {
				continue
			}
			again, ok := ParseGoVersion(v.String())
			if !ok || again != v {
				t.Fatalf("version %+v does not round-trip through %q", v, v.String())
			}
		}
		Choose(m) // must not panic
	})
}

// Heroku's go.mod directives and GOVERSION choose the Go; every choice
// says which Go and why.
func TestChooseFor(t *testing.T) {
	avail := []GoVersion{}
	for _, s := range []string{"1.15.15", "1.21.0", "1.24.9", "1.25.0", "1.25.4", "1.26rc2", "1.26.0", "1.26.1"} {
		v, _ := ParseGoVersion(s)
		avail = append(avail, v)
	}
	m, err := ParseGoMod([]byte("module x\n\n// +heroku goVersion go1.24\n// +heroku install ./cmd/web ./cmd/worker\ngo 1.21\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.HerokuGoVersion != "go1.24" || strings.Join(m.HerokuInstall, " ") != "./cmd/web ./cmd/worker" || m.Go.String() != "1.21" {
		t.Fatalf("%+v", m)
	}
	for _, tc := range []struct {
		mod, env, want, reason string
	}{
		{"// +heroku goVersion go1.24\ngo 1.21", "", "1.24.9", "Using Go 1.24.9 (the newest 1.24 release, for go.mod: // +heroku goVersion go1.24)"},
		{"// +heroku goVersion go1.24\ngo 1.21", "1.25", "1.25.4", "Using Go 1.25.4 (the newest 1.25 release, for GOVERSION=1.25)"},
		{"go 1.21", "go1.25.0", "1.25.0", "Using Go 1.25.0 (GOVERSION=go1.25.0 names this release)"},
		{"go 1.21", "=1.15.15", "1.15.15", "Using Go 1.15.15 (GOVERSION==1.15.15 names this release)"},
		{"go 1.15", "", "1.26.1", "Using Go 1.26.1 (the newest release, for go.mod: go 1.15; a go line older than 1.21 is the module's minimum language version, not a toolchain; set GOVERSION or // +heroku goVersion go1.15 to build with that Go)"},
		{"module x", "", "1.26.1", "Using Go 1.26.1 (the newest release, for go.mod, which has no go line)"},
		{"go 1.25", "", "1.25.4", "Using Go 1.25.4 (the newest 1.25 release, for go.mod: go 1.25)"},
		{"go 1.25.0", "", "1.25.0", "Using Go 1.25.0 (go.mod: go 1.25.0 names this release)"},
	} {
		m, err := ParseGoMod([]byte(tc.mod))
		if err != nil {
			t.Fatal(err)
		}
		w, err := ChooseFor(m, tc.env)
		if err != nil {
			t.Fatalf("%q %q: %v", tc.mod, tc.env, err)
		}
		v, ok := w.pick(avail)
		if !ok || v.String() != tc.want || w.Reason(v) != tc.reason {
			t.Errorf("%q GOVERSION=%q: %s %v %q, want %s %q", tc.mod, tc.env, v, ok, w.Reason(v), tc.want, tc.reason)
		}
	}
	// An override older than the go line is refused with the fix.
	m, _ = ParseGoMod([]byte("go 1.25\n"))
	w, _ := ChooseFor(m, "1.24")
	v, _ := w.pick(avail)
	if err := w.CheckModule(m, v); err == nil || !strings.Contains(err.Error(), "GOVERSION=1.24 picks Go 1.24.9, but go.mod says go 1.25") {
		t.Errorf("older override: %v", err)
	}
	if err := Choose(m).CheckModule(m, v); err != nil {
		t.Errorf("go.mod's own choice: %v", err)
	}
	for _, bad := range []string{"latest", "go2", "1.x"} {
		if _, err := ChooseFor(m, bad); err == nil || !strings.Contains(err.Error(), "GOVERSION="+bad+" is not a Go version") {
			t.Errorf("GOVERSION=%s: %v", bad, err)
		}
	}
	// What the proxy has, for the error of a version it has not.
	w, _ = ChooseFor(m, "1.23")
	if _, ok := w.pick(avail); ok {
		t.Error("picked a 1.23 that is not there")
	}
	if got := describeAvailable(avail); got != "Go 1.15.15, 1.21.0, 1.24.9, 1.25.4, 1.26.1" {
		t.Errorf("available: %q", got)
	}
}
