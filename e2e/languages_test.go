package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// The default builder builds the sample app of each language skiff's
// buildpacks support, pushed with the real git client, and each answers
// through the router. Apps that cannot be built are rejected with the
// reason, and their refs do not move.
func TestDeployLanguages(t *testing.T) {
	d, admin := fullDaemon(t)
	apps := "../buildpacks/testdata/apps"
	for _, tc := range []struct {
		app, want, detect string
	}{
		{"static", "<", "Static site detected"},
		{"procfile", "hello", ""},
		{"python", "hello from python 3.", "Python"},
		{"nodejs", "hello from node v24", "Node.js"},
		{"go", "hello from go", "Go"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			name := "lang-" + tc.app
			repo := copyApp(t, filepath.Join(apps, tc.app))
			r := d.git(admin, repo, "push", d.remote(name), "main")
			if r.code != 0 {
				t.Fatalf("push: %s", r)
			}
			if !strings.Contains(r.stderr, tc.detect) || !strings.Contains(r.stderr, "Application deployed") {
				t.Errorf("push output lacks %q:\n%s", tc.detect, r.stderr)
			}
			path := "/"
			if tc.app == "procfile" {
				path = "/hello.txt"
			}
			code, body := d.get(t, hostOf(name), path)
			if code != 200 || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s: %d %q", path, code, body)
			}
			d.ssh(admin, "", "apps:destroy", name, "--force")
		})
	}
	for _, tc := range []struct{ app, want string }{
		{"go-broken", "Build failed"},
		{"nodejs-no-start", "start"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			name := "lang-" + tc.app
			repo := copyApp(t, filepath.Join(apps, tc.app))
			r := d.git(admin, repo, "push", d.remote(name), "main")
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "pre-receive hook declined") {
				t.Fatalf("push of %s: %s", tc.app, r)
			}
			if r := d.git(admin, repo, "ls-remote", d.remote(name)); strings.Contains(r.stdout, "refs/heads/main") {
				t.Fatalf("a failed build left a ref: %s", r.stdout)
			}
			d.ssh(admin, "", "apps:destroy", name, "--force")
		})
	}
}
