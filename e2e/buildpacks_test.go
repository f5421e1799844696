package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// pushedApps are the buildpacks package's apps that only these tests push
// (they need a package index, take minutes, or must fail).
const pushedApps = "../buildpacks/testdata/pushed"

// pushApp pushes a copy of an app to a new skiff app and returns the push.
func (d *daemon) pushApp(t *testing.T, admin *user, name, dir string) result {
	t.Helper()
	repo := copyApp(t, dir)
	t.Cleanup(func() { d.ssh(admin, "", "apps:destroy", name, "--force") })
	return d.git(admin, repo, "push", d.remote(name), "main")
}

// mustDeploy pushes an app, fails the test unless it deploys, and returns
// the push output.
func (d *daemon) mustDeploy(t *testing.T, admin *user, name, dir string) string {
	t.Helper()
	r := d.pushApp(t, admin, name, dir)
	if r.code != 0 || !strings.Contains(r.stderr, "Application deployed") {
		t.Fatalf("push of %s: %s", name, r)
	}
	return r.stderr
}

// mustReject pushes an app and fails the test unless the build is
// rejected with every one of wants in the output.
func (d *daemon) mustReject(t *testing.T, admin *user, name, dir string, wants ...string) string {
	t.Helper()
	r := d.pushApp(t, admin, name, dir)
	if r.code == 0 || !strings.Contains(r.stderr, "pre-receive hook declined") {
		t.Fatalf("push of %s was not rejected: %s", name, r)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("push of %s: output lacks %q:\n%s", name, w, r.stderr)
		}
	}
	return r.stderr
}

// Apps in languages the default builder has no buildpack for are refused
// at build time with the language and the way forward, and a pin of a
// buildpack the builder lacks is refused when it is set. A failed build's
// summary keeps the buildpack's whole message, not its last line.
func TestDeployUnsupported(t *testing.T) {
	d, admin := fullDaemon(t)
	for app, lang := range map[string]string{"ruby": "Ruby", "php": "PHP", "java": "Java"} {
		t.Run(app, func(t *testing.T) {
			d.mustReject(t, admin, "lang-"+app, filepath.Join(pushedApps, app),
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
		d.mustReject(t, admin, "lang-no-start", "../buildpacks/testdata/apps/nodejs-no-start",
			`Build failed: a buildpack failed: missing npm start: package.json has no "start" script and there is no server.js Add a start script to package.json, like "scripts": {"start": "node index.js"}, or a server.js, or a Procfile with a web process.`)
	})
}
