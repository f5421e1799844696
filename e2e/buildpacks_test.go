package e2e

import (
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/internal/pyindex"
)

// pushedApps are the buildpacks package's apps that only these tests push
// (they need a package index, take minutes, or must fail).
const pushedApps = "../buildpacks/testdata/pushed"

// pushedApp is a work tree of a sample app and the skiff app it is pushed
// to (destroyed at the end of the test).
type pushedApp struct {
	d     *daemon
	admin *user
	name  string
	repo  string
}

func (d *daemon) newApp(t *testing.T, admin *user, name, dir string) *pushedApp {
	t.Helper()
	t.Cleanup(func() { d.ssh(admin, "", "apps:destroy", name, "--force") })
	return &pushedApp{d: d, admin: admin, name: name, repo: copyApp(t, dir)}
}

func (a *pushedApp) push() result {
	return a.d.git(a.admin, a.repo, "push", a.d.remote(a.name), "main")
}

// deploy pushes, fails the test unless the app deploys, and returns the
// push output.
func (a *pushedApp) deploy(t *testing.T) string {
	t.Helper()
	r := a.push()
	if r.code != 0 || !strings.Contains(r.stderr, "Application deployed") {
		t.Fatalf("push of %s: %s", a.name, r)
	}
	return r.stderr
}

// reject pushes and fails the test unless the build is rejected with
// every one of wants in the output.
func (a *pushedApp) reject(t *testing.T, wants ...string) string {
	t.Helper()
	r := a.push()
	if r.code == 0 || !strings.Contains(r.stderr, "pre-receive hook declined") {
		t.Fatalf("push of %s was not rejected: %s", a.name, r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("push of %s: output lacks %q:\n%s", a.name, w, r.stderr)
		}
	}
	return r.stderr
}

// edit changes a file of the work tree in a new commit.
func (a *pushedApp) edit(t *testing.T, file, body string) {
	t.Helper()
	commit(t, a.repo, file, body, "edit "+file)
}

// create makes the app before its first push, for settings that must
// apply to that push.
func (a *pushedApp) create(t *testing.T) *pushedApp {
	t.Helper()
	a.ssh(t, "apps:create", a.name)
	return a
}

// ssh runs a command on the app, failing the test when it fails.
func (a *pushedApp) ssh(t *testing.T, args ...string) result {
	t.Helper()
	r := a.d.ssh(a.admin, "", args...)
	if r.code != 0 {
		t.Fatalf("%v: %s", args, r)
	}
	return r
}

// get fetches a path of the app through the router.
func (a *pushedApp) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return a.d.get(t, hostOf(a.name), path)
}

// wantOutput fails the test unless out has every one of wants.
func wantOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// Apps in languages the default builder has no buildpack for are refused
// at build time with the language and the way forward, and a pin of a
// buildpack the builder lacks is refused when it is set. A failed build's
// summary keeps the buildpack's whole message, not its last line.
func TestDeployUnsupported(t *testing.T) {
	d, admin := fullDaemon(t)
	for app, lang := range map[string]string{"ruby": "Ruby", "php": "PHP", "java": "Java"} {
		t.Run(app, func(t *testing.T) {
			d.newApp(t, admin, "lang-"+app, filepath.Join(pushedApps, app)).reject(t,
				lang+" app detected", "This builder has no "+lang, "builder:set <app> heroku/builder:24",
				"Build failed: a buildpack failed: This builder has no "+lang+": skiff's own buildpacks build Node.js, Go, Python, static sites and Procfile apps. To build it")
		})
	}
	t.Run("buildpacks:set", func(t *testing.T) {
		if r := d.ssh(admin, "", "apps:create", "pins"); r.code != 0 {
			t.Fatal(r)
		}
		defer d.ssh(admin, "", "apps:destroy", "pins", "--force")
		r := d.ssh(admin, "", "buildpacks:set", "pins", "heroku/ruby")
		if r.code != 1 || !strings.Contains(r.stderr, "buildpack heroku/ruby is not in builder skiff/builder (it has ") || !strings.Contains(r.stderr, "skiff/nodejs") {
			t.Errorf("pin of a buildpack the builder lacks: %s", r)
		}
		if r := d.ssh(admin, "", "buildpacks", "pins"); strings.Contains(r.stdout, "heroku/ruby") {
			t.Errorf("the refused pin was saved: %s", r)
		}
		if r := d.ssh(admin, "", "buildpacks:set", "pins", "skiff/nodejs@9.9.9"); r.code != 1 || !strings.Contains(r.stderr, "has no version 9.9.9") {
			t.Errorf("pin of a missing version: %s", r)
		}
		if r := d.ssh(admin, "", "buildpacks:set", "pins", "skiff/procfile"); r.code != 0 {
			t.Errorf("pin of skiff/procfile: %s", r)
		}
	})
	t.Run("whole failure message", func(t *testing.T) {
		d.newApp(t, admin, "lang-no-start", "../buildpacks/testdata/apps/nodejs-no-start").reject(t,
			`Build failed: a buildpack failed: missing npm start: package.json has no "start" script and there is no server.js. Add a start script to package.json, like "scripts": {"start": "node index.js"}, a server.js, a Procfile with a web process, or a build script that leaves a static site in dist/, build/ or out/.`)
	})
}

// A Go app on go-sqlite3 builds with cgo (a dependency needs it) and runs;
// go.mod's "// +heroku goVersion" picks the Go and the output says which and
// why; GOVERSION and CGO_ENABLED from config:set --build are honoured; an
// app whose go.mod says go 1.15 builds with the newest Go, saying so.
func TestDeployGo(t *testing.T) {
	d, admin := fullDaemon(t)
	app := d.newApp(t, admin, "go-sqlite", filepath.Join(pushedApps, "go-sqlite"))
	out := app.deploy(t)
	wantOutput(t, out, "Installing Go (go.mod: // +heroku goVersion go1.25)", " (the newest 1.25 release, for go.mod: // +heroku goVersion go1.25)",
		"cgo on (CGO_ENABLED=1): github.com/mattn/go-sqlite3 uses it")
	if code, body := app.get(t, "/sqlite"); code != 200 || !strings.Contains(body, "hello from sqlite 3.") {
		t.Fatalf("GET /: %d %q", code, body)
	}

	app.ssh(t, "config:set", app.name, "GOVERSION=1.19.99", "--build", "--no-restart")
	app.edit(t, "README", "GOVERSION\n")
	app.reject(t, "The Go module proxy has no Go toolchain for GOVERSION=1.19.99 (linux/", "; it has Go 1.")
	app.ssh(t, "config:unset", app.name, "GOVERSION", "--no-restart")

	app.ssh(t, "config:set", app.name, "CGO_ENABLED=0", "--build", "--no-restart")
	app.edit(t, "README", "CGO_ENABLED\n")
	wantOutput(t, app.deploy(t), "CGO_ENABLED=0, as the app's build-time config sets it", "Using cached Go 1.25.")
	if code, body := app.get(t, "/sqlite"); code != 500 || !strings.Contains(body, "requires cgo") {
		t.Errorf("GET / of a build without cgo: %d %q", code, body)
	}

	// go 1.15 is a language version, not a toolchain: the newest Go builds
	// it, and the output says that it did and why.
	t.Run("go 1.15", func(t *testing.T) {
		app := d.newApp(t, admin, "go-old-goline", filepath.Join(pushedApps, "go-old-goline"))
		out := app.deploy(t)
		wantOutput(t, out, "Installing Go (go.mod: go 1.15)")
		m := goOldReason.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("output lacks the Go chosen for go 1.15 and why:\n%s", out)
		}
		if code, body := app.get(t, "/"); code != 200 || body != "hello from go"+m[1]+"\n" {
			t.Fatalf("GET / of the app built with Go %s: %d %q", m[1], code, body)
		}
	})
}

// goOldReason is the line that names the Go chosen for a go.mod whose go
// line predates toolchains, and why.
var goOldReason = regexp.MustCompile(`Using Go (1\.\d+\.\d+) \(the newest release, for go\.mod: go 1\.15; a go line older than 1\.21 is the module's minimum language version, not a toolchain; set GOVERSION or // \+heroku goVersion go1\.15 to build with that Go\)`)

// Node.js apps as their starters make them: Next.js (Turbopack resolves
// nothing outside the app, so node_modules is a real directory of it while
// building), yarn 1, yarn 4 (Plug'n'Play) and pnpm at the versions
// packageManager or the lockfile pins, devDependencies pruned for launch
// unless opted out, a Vite single-page app served as a static site, and an
// engines.node skiff does not install, refused with what it does.
func TestDeployNode(t *testing.T) {
	d, admin := fullDaemon(t)
	t.Run("nextjs", func(t *testing.T) {
		app := d.newApp(t, admin, "nextjs", filepath.Join(pushedApps, "nextjs"))
		wantOutput(t, app.deploy(t), "Running npm ci --include=dev (package-lock.json)", "Running build (npm run build)", "(Turbopack)", "Pruning devDependencies")
		if code, body := app.get(t, "/"); code != 200 || !strings.Contains(body, "hello from next") {
			t.Fatalf("GET /: %d %.300q", code, body)
		}
		// A change to the page only: node_modules comes from the cache for
		// the build, and the image keeps the previous one.
		app.edit(t, "app/page.js", "export const dynamic = \"force-dynamic\";\nexport default function Page() {\n  return <h1>hello again from next {process.version}</h1>;\n}\n")
		wantOutput(t, app.deploy(t), "Using cached Node.js", "Restoring node_modules from the cache (package-lock.json unchanged)", "Reusing the previous image's node_modules")
		if code, body := app.get(t, "/"); code != 200 || !strings.Contains(body, "hello again from next") {
			t.Fatalf("GET / after the change: %d %.300q", code, body)
		}
		log := app.ssh(t, "builds:output", app.name).stdout
		wantOutput(t, log, "Reusing layer 'skiff/nodejs:modules'", "Reusing layer 'skiff/nodejs:node'")
	})
	for _, tc := range []struct{ app, agent string }{
		{"node-yarn1", "yarn/1.22."}, {"node-berry", "yarn/4.9.2"}, {"node-pnpm", "pnpm/10.12.1"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			app := d.newApp(t, admin, tc.app, filepath.Join(pushedApps, tc.app))
			wantOutput(t, app.deploy(t), "Verified against the registry's integrity digest", "Pruning devDependencies")
			if code, body := app.get(t, "/"); code != 200 || !strings.Contains(body, "hello from "+tc.agent) || !strings.Contains(body, "left-pad pruned; ..built by "+tc.agent) {
				t.Fatalf("GET /: %d %q", code, body)
			}
		})
	}
	t.Run("keep devDependencies", func(t *testing.T) {
		app := d.newApp(t, admin, "node-npm", filepath.Join(pushedApps, "node-npm"))
		app.deploy(t)
		if _, body := app.get(t, "/"); !strings.Contains(body, "left-pad pruned") {
			t.Fatalf("GET /: %q", body)
		}
		app.ssh(t, "config:set", app.name, "NPM_CONFIG_PRODUCTION=false", "--build", "--no-restart")
		app.edit(t, "README", "keep\n")
		if out := app.deploy(t); strings.Contains(out, "Pruning devDependencies") {
			t.Errorf("NPM_CONFIG_PRODUCTION=false pruned:\n%s", out)
		}
		if _, body := app.get(t, "/"); !strings.Contains(body, "left-pad present") {
			t.Errorf("GET /: %q", body)
		}
	})
	t.Run("vite-spa", func(t *testing.T) {
		app := d.newApp(t, admin, "vite-spa", filepath.Join(pushedApps, "vite-spa"))
		wantOutput(t, app.deploy(t), "Serving dist/ with the static web server", "Paths without a file get dist/index.html")
		for _, path := range []string{"/", "/dashboard/42"} {
			if code, body := app.get(t, path); code != 200 || !strings.Contains(body, "vite spa shell") {
				t.Errorf("GET %s: %d %q", path, code, body)
			}
		}
		if code, _ := app.get(t, "/assets/missing.js"); code != 404 {
			t.Errorf("a missing asset: %d", code)
		}
	})
	t.Run("engines.node 4.0.0", func(t *testing.T) {
		d.newApp(t, admin, "node-old", filepath.Join(pushedApps, "node-engines-old")).reject(t,
			`No Node.js that skiff installs matches engines.node "4.0.0": it installs Node.js 14 and newer, and the npm registry has 14.`, "24.")
	})
}

// The Debian packages the test's package index makes wheels of.
var pyDebs = []string{"python3-flask", "python3-werkzeug", "python3-jinja2", "python3-markupsafe", "python3-itsdangerous", "python3-click",
	"python3-django", "python3-asgiref", "python3-sqlparse", "python3-tz", "python3-gunicorn", "python3-packaging"}

// Python apps of each manager Heroku supports, against a package index the
// test fills with wheels of Debian's Flask and Django (PyPI is not
// reachable here) and serves beyond the host: a real Flask app on pip,
// Pipenv, Poetry and uv (on Debian 13's Python 3.13), a real Django project
// with collectstatic, .python-version with comments, python as well as
// python3, and failures that say what failed.
func TestDeployPython(t *testing.T) {
	d, admin := fullDaemon(t)
	ix, err := pyindex.FromDebian(context.Background(), "/var/cache/skiff-test/pydebs", pyDebs...)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveBeyondHost(t, ix.Handler())
	host, _, _ := net.SplitHostPort(addr)
	index := []string{"PIP_INDEX_URL=http://" + addr + "/simple/", "PIP_TRUSTED_HOST=" + host}
	newPython := func(t *testing.T, name string) *pushedApp {
		app := d.newApp(t, admin, name, filepath.Join(pushedApps, name)).create(t)
		app.ssh(t, append(append([]string{"config:set", name}, index...), "--build")...)
		if manager := strings.TrimPrefix(name, "python-"); manager == "uv" || manager == "poetry" || manager == "pipenv" {
			roots := []string{"flask", "gunicorn"}
			if manager == "uv" {
				roots = []string{"flask"} // on Python 3.13, which gunicorn 20 does not run on
			}
			lock, body, err := ix.Lock(manager, "flask-"+manager, roots, []string{"packaging"})
			if err != nil {
				t.Fatal(err)
			}
			app.edit(t, lock, body)
		}
		return app
	}
	for _, tc := range []struct {
		app   string
		wants []string
		body  string
	}{
		{"python-flask", []string{"Using Python 3.11.", "(the builder's), for .python-version 3.11", "Installing dependencies (pip, requirements.txt)", "Process type web -> gunicorn app:app"}, "on python 3.11"},
		{"python-pipenv", []string{"Installing dependencies (Pipenv, Pipfile.lock)", "packages Pipfile.lock pins, their hashes checked"}, "packaging absent"},
		{"python-poetry", []string{"Installing dependencies (Poetry, poetry.lock)", "packages poetry.lock pins, their hashes checked"}, "packaging absent"},
		{"python-uv", []string{"Installing Python 3.13 (Debian 13's packages)", "runs with Debian trixie's C library", "Installing dependencies (uv, uv.lock)"}, "on python 3.13."},
	} {
		t.Run(tc.app, func(t *testing.T) {
			app := newPython(t, tc.app)
			wantOutput(t, app.deploy(t), tc.wants...)
			if code, body := app.get(t, "/"); code != 200 || !strings.Contains(body, "hello from flask 2.2.2") || !strings.Contains(body, tc.body) {
				t.Fatalf("GET /: %d %q", code, body)
			}
			if tc.app == "python-flask" {
				// python, not only python3, in one-off processes too.
				if r := app.ssh(t, "run", app.name, "python", "-c", "'import flask, sys; print(\"python\", sys.version_info[:2], flask.__version__)'"); !strings.Contains(r.stdout, "python (3, 11) 2.2.2") {
					t.Errorf("run python: %s", r)
				}
			}
		})
	}
	t.Run("django", func(t *testing.T) {
		app := newPython(t, "python-django")
		wantOutput(t, app.deploy(t), "Running collectstatic (python manage.py collectstatic --noinput)", "static files copied", "Process type web -> gunicorn mysite.wsgi")
		if code, body := app.get(t, "/"); code != 200 || !strings.Contains(body, "hello from django 3.2.25; static collected: True") {
			t.Fatalf("GET /: %d %q", code, body)
		}
		app.ssh(t, "config:set", app.name, "DISABLE_COLLECTSTATIC=1", "--build", "--no-restart")
		app.edit(t, "README", "no collectstatic\n")
		wantOutput(t, app.deploy(t), "Skipping collectstatic (DISABLE_COLLECTSTATIC)")
	})
	t.Run("python without a venv", func(t *testing.T) {
		app := d.newApp(t, admin, "python-procfile", filepath.Join(pushedApps, "python-procfile"))
		app.deploy(t)
		if code, body := app.get(t, "/hello.txt"); code != 200 || !strings.Contains(body, "run by python") {
			t.Errorf("GET /hello.txt: %d %q", code, body)
		}
	})
	t.Run("failures", func(t *testing.T) {
		app := d.newApp(t, admin, "python-fails", filepath.Join(pushedApps, "python-flask")).create(t)
		app.ssh(t, "config:set", app.name, "PIP_INDEX_URL=https://pypi.invalid/simple", "--build")
		app.reject(t, "pip could not reach the package index https://pypi.invalid/simple (", "the build's network, not requirements.txt, is the problem")
		app.edit(t, ".python-version", "# wanted\n3.12\n")
		app.reject(t, ".python-version asks for Python 3.12, which this builder does not offer: it has Python 3.11 (the builder's) and 3.13 (Debian 13's packages).")
	})
}
