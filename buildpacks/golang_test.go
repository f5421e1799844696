package buildpacks

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGoApp(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads a Go toolchain from the Go module proxy")
	}
	p := newPlatform(t, "go")
	p.mustBuild(false)
	out := p.out.String()
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/go"}) {
		t.Fatalf("group %v", got)
	}
	for _, want := range []string{
		"-----> Go app detected\n-----> Installing Go (go.mod: go 1.25.4)\n       Using Go 1.25.4 (go.mod: go 1.25.4 names this release)\n       Downloading Go 1.25.4 (v0.0.1-go1.25.4.linux-",
		"       No package uses cgo: a static binary (CGO_ENABLED=0)\n",
		"       Verified against the checksum database\n",
		"-----> Building .\n",
		"       go: downloading github.com/google/uuid v1.6.0\n",
		"       Built hello\n       Process type web -> hello\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for name, want := range map[string]layerTypes{
		"go":       {Build: true, Cache: true},
		"go-mod":   {Cache: true},
		"go-build": {Cache: true},
		"app":      {Launch: true},
	} {
		if doc, ok := p.layer("skiff/go", name); !ok || doc.Types != want {
			t.Errorf("layer %s: %+v, want %+v", name, doc.Types, want)
		}
	}
	bin := filepath.Join(p.layers, "skiff_go", "app", "bin", "hello")
	if web := p.processes["web"]; !slices.Equal(web.Command, []string{bin}) || !web.Default {
		t.Errorf("web process %+v", web)
	}
	f, err := elf.Open(bin)
	must(t, err)
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked")
		}
	}
	f.Close()
	checkGet(t, p.start("web")+"/", 200, "hello from go1.25.4, id ")

	// A one-line change rebuilds from the caches: no download at all.
	main := filepath.Join(p.app, "main.go")
	src, _ := os.ReadFile(main)
	p.setApp("go")
	must(t, os.WriteFile(main, []byte(strings.Replace(string(src), "hello from", "hello again from", 1)), 0o644))
	p.mustBuild(true)
	out = p.out.String()
	if !strings.Contains(out, "Using cached Go 1.25.4") || strings.Contains(out, "Downloading") || strings.Contains(out, "go: downloading") {
		t.Errorf("rebuild output:\n%s", out)
	}
	checkGet(t, p.start("web")+"/", 200, "hello again from go1.25.4")

	// A push that does not compile fails with the compiler's message.
	p.setApp("go-broken")
	if p.rebuild() {
		t.Fatalf("a syntax error built:\n%s", p.out.String())
	}
	out = p.out.String()
	if !strings.Contains(out, "       ./main.go:7:") || !strings.Contains(out, " !     go build failed (exit status 1); fix the errors above and push again\n") {
		t.Errorf("output:\n%s", out)
	}
}

func TestGoNoMainPackage(t *testing.T) {
	p := newPlatform(t, "go")
	must(t, os.WriteFile(filepath.Join(p.app, "main.go"), []byte("package hello\n"), 0o644))
	if p.build() {
		t.Fatal("a library built as an app")
	}
	if out := p.out.String(); !strings.Contains(out, " !     no main package") || strings.Contains(out, "Downloading") {
		t.Errorf("output:\n%s", out)
	}
}

// An app on go-sqlite3 builds with cgo, because a dependency needs it, and
// runs; CGO_ENABLED from the app's build-time config wins. go.mod's
// "// +heroku goVersion" picks the Go, and the log says which and why.
func TestGoCgoApp(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads a Go toolchain and go-sqlite3, and compiles SQLite")
	}
	p := newPlatform(t, "pushed/go-sqlite")
	p.mustBuild(false)
	out := p.out.String()
	for _, want := range []string{
		"-----> Installing Go (go.mod: // +heroku goVersion go1.25)\n       Using Go 1.25.",
		" (the newest 1.25 release, for go.mod: // +heroku goVersion go1.25)\n",
		"       cgo on (CGO_ENABLED=1): github.com/mattn/go-sqlite3 uses it; the binary links the run image's C library\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	bin := filepath.Join(p.layers, "skiff_go", "app", "bin", "go-sqlite")
	f, err := elf.Open(bin)
	must(t, err)
	dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
	f.Close()
	if !dynamic {
		t.Error("a cgo binary is static")
	}
	checkGet(t, p.start("web")+"/sqlite", 200, "hello from sqlite 3.")

	p.env["CGO_ENABLED"] = "0"
	p.mustBuild(true)
	if out := p.out.String(); !strings.Contains(out, "       CGO_ENABLED=0, as the app's build-time config sets it\n") || !strings.Contains(out, "Using cached Go 1.25.") {
		t.Errorf("output:\n%s", p.out.String())
	}
	checkGet(t, p.start("web")+"/sqlite", 500, "requires cgo")
}
