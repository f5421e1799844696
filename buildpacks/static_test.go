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

func TestStaticSite(t *testing.T) {
	p := newPlatform(t, "static")
	p.mustBuild(false)
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/static"}) {
		t.Fatalf("group %v, want skiff/static", got)
	}
	doc, ok := p.layer("skiff/static", "server")
	if !ok || !doc.Types.Launch || doc.Types.Build || doc.Types.Cache || doc.Metadata["binary"] == "" {
		t.Fatalf("server layer %+v", doc)
	}
	if !slices.Equal(p.exported, []string{"skiff_static/server"}) {
		t.Errorf("exported %v", p.exported)
	}
	web := p.processes["web"]
	if !web.Default || filepath.Base(web.Command[0]) != "skiff-static" || web.Command[2] != p.app {
		t.Fatalf("web process %+v", web)
	}
	url := p.start("web")
	checkGet(t, url+"/", 200, "Hello from a static site")
	checkGet(t, url+"/app.3f2a9c1b.css", 200, "teal")
	checkGet(t, url+"/.env", 404, "Not here")

	// The next push reuses the server layer of the previous image.
	p.mustBuild(true)
	if !slices.Equal(p.reused, []string{"skiff_static/server"}) || len(p.exported) != 0 {
		t.Errorf("rebuild: reused %v, exported %v", p.reused, p.exported)
	}
	if !strings.Contains(p.out.String(), "Reusing the web server from the previous build") {
		t.Errorf("rebuild output:\n%s", p.out.String())
	}
	checkGet(t, p.start("web")+"/", 200, "Hello from a static site")
}

func TestStaticPublicDir(t *testing.T) {
	p := newPlatform(t, "static")
	must(t, os.Mkdir(filepath.Join(p.app, "public"), 0o755))
	must(t, os.Rename(filepath.Join(p.app, "index.html"), filepath.Join(p.app, "public", "index.html")))
	p.mustBuild(false)
	if got := p.processes["web"].Command[2]; got != filepath.Join(p.app, "public") {
		t.Errorf("serves %s, want public/", got)
	}
	url := p.start("web")
	checkGet(t, url+"/", 200, "Hello from a static site")
	checkGet(t, url+"/app.3f2a9c1b.css", 404, "404 page not found")
}

func TestStaticWithProcfile(t *testing.T) {
	p := newPlatform(t, "static")
	must(t, os.WriteFile(filepath.Join(p.app, "Procfile"), []byte("web: exec python3 -m http.server \"$PORT\"\n"), 0o644))
	p.mustBuild(false)
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/static", "skiff/procfile"}) {
		t.Fatalf("group %v", got)
	}
	if web := p.processes["web"]; web.Buildpack != "skiff/procfile" || web.Command[0] != "bash" || !web.Default {
		t.Errorf("the Procfile's web must win: %+v", web)
	}
}

func checkGet(t *testing.T, url string, status int, contains string) {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status || !strings.Contains(string(body), contains) {
		t.Errorf("GET %s: %d %q, want %d containing %q", url, resp.StatusCode, body, status, contains)
	}
}

func TestStaticRootWithPublicFolder(t *testing.T) {
	p := newPlatform(t, "static")
	must(t, os.Mkdir(filepath.Join(p.app, "public"), 0o755))
	must(t, os.WriteFile(filepath.Join(p.app, "public", "logo.txt"), []byte("logo"), 0o644))
	p.mustBuild(false)
	url := p.start("web")
	checkGet(t, url+"/", 200, "Hello from a static site")
	checkGet(t, url+"/public/logo.txt", 200, "logo")
}
