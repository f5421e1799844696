package buildpacks

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestProcfileApp(t *testing.T) {
	p := newPlatform(t, "procfile")
	p.mustBuild(false)
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/procfile"}) {
		t.Fatalf("group %v, want only skiff/procfile", got)
	}
	if !strings.Contains(p.out.String(), "-----> Discovering process types\n       Procfile declares types -> web, worker\n") {
		t.Errorf("output:\n%s", p.out.String())
	}
	web := p.processes["web"]
	if !slices.Equal(web.Command, []string{"bash", "-c", `exec python3 -m http.server "$PORT"`}) || !web.Default {
		t.Errorf("web process %+v", web)
	}
	if w := p.processes["worker"]; w.Default || w.Command[2] != "while true; do sleep 60; done" {
		t.Errorf("worker process %+v", w)
	}
	url := p.start("web")
	resp, err := http.Get(url + "/hello.txt")
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from a Procfile app\n" {
		t.Errorf("GET /hello.txt: %q", body)
	}
}

func TestProcfileBroken(t *testing.T) {
	p := newPlatform(t, "procfile-broken")
	if p.build() {
		t.Fatalf("a Procfile with conflict markers built:\n%s", p.out.String())
	}
	want := " !     Procfile line 2: merge conflict marker \"<<<<<<< HEAD\"; resolve the conflict and commit the Procfile\n !     Fix the Procfile, commit it and push again.\n"
	if !strings.Contains(p.out.String(), want) {
		t.Errorf("output:\n%s\nwant:\n%s", p.out.String(), want)
	}
}

func TestNothingDetected(t *testing.T) {
	p := newPlatform(t, "procfile")
	must(t, os.Remove(filepath.Join(p.app, "Procfile")))
	if g := p.detect(); g != nil {
		t.Fatalf("an app with nothing to build detected as %v", g)
	}
}
