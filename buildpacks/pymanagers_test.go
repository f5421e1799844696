package buildpacks

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skiffhq/skiff/internal/pyindex"
)

// The Debian packages the test index makes wheels of: Flask, Django and
// gunicorn with their dependencies, and packaging (a dev dependency).
var pyDebs = []string{"python3-flask", "python3-werkzeug", "python3-jinja2", "python3-markupsafe", "python3-itsdangerous", "python3-click",
	"python3-django", "python3-asgiref", "python3-sqlparse", "python3-tz", "python3-gunicorn", "python3-packaging"}

var (
	pyIndexOnce sync.Once
	pyIndex     *pyindex.Index
	pyIndexURL  string
	pyIndexErr  error
)

// testIndex serves the wheels on 127.0.0.1 (this harness runs the buildpacks
// unsandboxed) and returns its simple index URL.
func testIndex(t *testing.T) (*pyindex.Index, string) {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("needs apt-get to fetch Debian's Python packages")
	}
	pyIndexOnce.Do(func() {
		pyIndex, pyIndexErr = pyindex.FromDebian(context.Background(), "/var/cache/skiff-test/pydebs", pyDebs...)
		if pyIndexErr != nil {
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			pyIndexErr = err
			return
		}
		go http.Serve(l, pyIndex.Handler())
		pyIndexURL = "http://" + l.Addr().String() + "/simple/"
	})
	if pyIndexErr != nil {
		t.Fatalf("package index: %v", pyIndexErr)
	}
	return pyIndex, pyIndexURL
}

// writeLocks writes the lock file a locked sample app (python-<manager>)
// needs, resolved against the test index.
func writeLocks(t *testing.T, ix *pyindex.Index, app, dir string) {
	t.Helper()
	manager := strings.TrimPrefix(app, "python-")
	if manager != "uv" && manager != "poetry" && manager != "pipenv" {
		return
	}
	roots := []string{"flask", "gunicorn"}
	if manager == "uv" {
		roots = []string{"flask"} // on Python 3.13, which gunicorn 20 does not run on
	}
	name, body, err := ix.Lock(manager, "flask-"+manager, roots, []string{"packaging"})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
}

// Flask apps of each package manager Heroku supports install from their
// lock file (exactly its packages, hashes checked, markers applied, dev
// dependencies left out) from a package index, and answer.
func TestPythonManagers(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches Debian's Python packages")
	}
	ix, url := testIndex(t)
	for _, tc := range []struct {
		app   string
		wants []string
	}{
		{"python-flask", []string{"Using Python 3.11.", "(the builder's), for .python-version 3.11", "Installing dependencies (pip, requirements.txt)", "Successfully installed"}},
		{"python-pipenv", []string{"Installing dependencies (Pipenv, Pipfile.lock)", "packages Pipfile.lock pins, their hashes checked"}},
		{"python-poetry", []string{"Installing dependencies (Poetry, poetry.lock)", "packages poetry.lock pins, their hashes checked"}},
	} {
		t.Run(tc.app, func(t *testing.T) {
			p := newPlatform(t, "pushed/"+tc.app)
			p.env["PIP_INDEX_URL"] = url
			writeLocks(t, ix, tc.app, p.app)
			p.mustBuild(false)
			for _, w := range append(tc.wants, "Process type web -> gunicorn app:app") {
				if !strings.Contains(p.out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, p.out.String())
				}
			}
			checkGet(t, p.start("web")+"/", 200, "hello from flask 2.2.2 on python 3.11")
			if tc.app != "python-flask" {
				checkGet(t, p.start("web")+"/", 200, "packaging absent")
			}
		})
	}
}

// A .python-version of 3.13 gets Debian 13's Python, installed from the
// Debian mirror into a layer and run with its own C library; uv.lock's
// packages install into its venv.
func TestPythonDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Debian's Python 3.13")
	}
	for _, tool := range []string{"patchelf", "gpgv", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s, as the builder has", tool)
		}
	}
	ix, url := testIndex(t)
	p := newPlatform(t, "pushed/python-uv")
	p.env["PIP_INDEX_URL"] = url
	writeLocks(t, ix, "python-uv", p.app)
	p.mustBuild(false)
	for _, w := range []string{"-----> Installing Python 3.13 (Debian 13's packages)", "from Debian trixie (", "runs with Debian trixie's C library and OpenSSL",
		"(Debian 13's packages), for .python-version 3.13", "Installing dependencies (uv, uv.lock)", "packages uv.lock pins, their hashes checked", "Process type web -> python app.py"} {
		if !strings.Contains(p.out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, p.out.String())
		}
	}
	checkGet(t, p.start("web")+"/", 200, "hello from flask 2.2.2 on python 3.13.")
	checkGet(t, p.start("web")+"/", 200, "packaging absent")

	// The next build asks Debian for nothing.
	p.mustBuild(true)
	if out := p.out.String(); !strings.Contains(out, "Using cached Python 3.13.") || strings.Contains(out, "Downloading") {
		t.Errorf("rebuild output:\n%s", out)
	}
	checkGet(t, p.start("web")+"/", 200, "on python 3.13.")
}

// A Django project gets collectstatic, unless DISABLE_COLLECTSTATIC=1,
// and answers through gunicorn.
func TestPythonDjango(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches Debian's Python packages")
	}
	_, url := testIndex(t)
	p := newPlatform(t, "pushed/python-django")
	p.env["PIP_INDEX_URL"] = url
	p.mustBuild(false)
	for _, w := range []string{"-----> Running collectstatic (python manage.py collectstatic --noinput)", "static files copied", "Process type web -> gunicorn mysite.wsgi"} {
		if !strings.Contains(p.out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, p.out.String())
		}
	}
	if doc, _ := p.layer("skiff/python", "venv"); doc.Types != (layerTypes{Launch: true, Build: true, Cache: true}) {
		t.Errorf("collectstatic needs the venv at build time, and the next build too: %+v", doc.Types)
	}
	checkGet(t, p.start("web")+"/", 200, "hello from django 3.2.25; static collected: True")

	p.env["DISABLE_COLLECTSTATIC"] = "1"
	p.setApp("pushed/python-django")
	p.mustBuild(true)
	if out := p.out.String(); !strings.Contains(out, "Skipping collectstatic (DISABLE_COLLECTSTATIC)") || strings.Contains(out, "static files copied") {
		t.Errorf("output:\n%s", out)
	}
	checkGet(t, p.start("web")+"/", 200, "static collected: False")
}

// A pip failure says what failed: an index it cannot reach is the network,
// not the requirements; a package the index does not have is named.
func TestPythonPipFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches Debian's Python packages")
	}
	_, url := testIndex(t)
	p := newPlatform(t, "pushed/python-flask")
	p.env["PIP_INDEX_URL"] = "https://pypi.invalid/simple"
	p.env["PIP_RETRIES"] = "0"
	if p.build() {
		t.Fatal("built without an index")
	}
	if out := p.out.String(); !strings.Contains(out, " !     pip could not reach the package index https://pypi.invalid/simple (") || !strings.Contains(out, "the build's network, not requirements.txt, is the problem") {
		t.Errorf("output:\n%s", out)
	}
	p.env["PIP_INDEX_URL"] = url
	must(t, os.WriteFile(filepath.Join(p.app, "requirements.txt"), []byte("flask\nno-such-package-here==1.0\n"), 0o644))
	if p.rebuild() {
		t.Fatal("built with a package the index lacks")
	}
	if out := p.out.String(); !strings.Contains(out, " !     The package index "+url+" has no release of no-such-package-here==1.0 that requirements.txt accepts") {
		t.Errorf("output:\n%s", out)
	}
}
