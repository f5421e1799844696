package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The default builder builds the sample app of each language skiff's
// buildpacks support, pushed with the real git client, and each answers
// through the router. Apps that cannot be built are rejected with the
// reason, and their refs do not move: a new app's, and the running Go
// app's when a commit that does not compile is pushed to it.
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
			if tc.app == "go" {
				brokenGoCommit(t, d, admin, name, repo, filepath.Join(apps, "go-broken", "main.go"))
			}
			d.ssh(admin, "", "apps:destroy", name, "--force")
		})
	}
	for _, tc := range []struct{ app, want string }{
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

// brokenGoCommit pushes a commit that does not compile to the running Go
// app: the push is rejected with the compiler's reason, found with the
// toolchain and build cache of the build before it (nothing downloaded
// again), and the ref and the serving release stay as they were.
func brokenGoCommit(t *testing.T, d *daemon, admin *user, name, repo, brokenMain string) {
	t.Helper()
	src, err := os.ReadFile(brokenMain)
	if err != nil {
		t.Fatal(err)
	}
	before := d.git(admin, repo, "ls-remote", d.remote(name), "main").stdout
	commit(t, repo, "main.go", string(src), "a commit that does not compile")
	r := d.git(admin, repo, "push", d.remote(name), "main")
	if r.code == 0 || !strings.Contains(r.stderr, "pre-receive hook declined") || !strings.Contains(r.stderr, "syntax error") || !strings.Contains(r.stderr, "Build failed") {
		t.Fatalf("push of a broken commit: %s", r)
	}
	if strings.Contains(r.stderr, "Downloading") {
		t.Errorf("the broken commit's build downloaded again:\n%s", r.stderr)
	}
	if after := d.git(admin, repo, "ls-remote", d.remote(name), "main").stdout; after != before || before == "" {
		t.Errorf("the ref moved: %q, then %q", before, after)
	}
	if code, body := d.get(t, hostOf(name), "/"); code != 200 || !strings.Contains(body, "hello from go") {
		t.Errorf("the running release after the rejected push: %d %q", code, body)
	}
}
