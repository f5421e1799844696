package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// pyApp is a Procfile app on the run image's python3: it answers with its
// version, a config var and who it is, and prints each request.
func pyApp(version string) map[string]string {
	return map[string]string{
		"Procfile": "web: exec python3 server.py\nworker: exec python3 -u -c \"import time; print('worker up'); time.sleep(1e9)\"\n",
		"VERSION":  version + "\n",
		"server.py": `import http.server, json, os, signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health" and os.environ.get("UNHEALTHY"):
            self.send_error(503, "unhealthy on purpose")
            return
        body = json.dumps({"version": open("VERSION").read().strip(), "greeting": os.environ.get("GREETING", ""),
            "process": os.environ.get("SKIFF_PROCESS", ""), "release": os.environ.get("SKIFF_RELEASE", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("request", fmt % args, flush=True)
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
`,
	}
}

type answer struct {
	Version, Greeting, Process, Release string
}

func (d *daemon) answer(t *testing.T, app string) answer {
	t.Helper()
	code, body := d.get(t, hostOf(app), "/")
	var a answer
	if code != 200 || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("GET %s: %d %q", app, code, body)
	}
	return a
}

// The life of an app: push, config, scale, push again, roll back, a failed
// build that changes nothing, one-off runs, logs, destroy.
func TestDeployLifecycle(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "lifecycle"
	repo := newRepo(t, pyApp("1"))
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))

	r := d.git(admin, repo, "push", "skiff", "main")
	if r.code != 0 {
		t.Fatalf("first push: %s", r)
	}
	for _, want := range []string{"-----> Building lifecycle (commit", "-----> Build finished in", "-----> Released v1",
		"=====> Application deployed:", "http://lifecycle.skiff.test"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("push output lacks %q:\n%s", want, r.stderr)
		}
	}
	if a := d.answer(t, app); a.Version != "1" || a.Process != "web.1" || a.Release != "v1" {
		t.Fatalf("after the first push: %+v", a)
	}

	// Config: a new release; values round-trip byte for byte.
	if r := d.ssh(admin, "", "config:set", app, `'GREETING=hi there'`); r.code != 0 || !strings.Contains(r.stderr, "done, v2") {
		t.Fatalf("config:set: %s", r)
	}
	if a := d.answer(t, app); a.Greeting != "hi there" || a.Release != "v2" {
		t.Fatalf("after config:set: %+v", a)
	}
	odd := "a=b\nc 'd' \"e\" $f `g`\r\n"
	if r := d.local("", "config:set", app, "ODD="+odd, "--no-restart"); r.code != 0 {
		t.Fatalf("config:set --no-restart: %s", r)
	}
	if r := d.ssh(admin, "", "config:get", app, "ODD"); r.stdout != odd+"\n" {
		t.Fatalf("config:get ODD = %q, want %q", r.stdout, odd+"\n")
	}

	// Scale: instances added, none restarted.
	if r := d.ssh(admin, "", "ps:scale", app, "web=2", "worker=1"); r.code != 0 || !strings.Contains(r.stdout, "web=2 worker=1") {
		t.Fatalf("ps:scale: %s", r)
	}
	ps := d.ssh(admin, "", "ps", app)
	for _, want := range []string{"web.1: up", "web.2: up", "worker.1: up"} {
		if !strings.Contains(ps.stdout, want) {
			t.Errorf("ps lacks %q:\n%s", want, ps.stdout)
		}
	}
	seen := map[string]bool{}
	for range 20 {
		seen[d.answer(t, app).Process] = true
	}
	if !seen["web.1"] || !seen["web.2"] {
		t.Errorf("requests reached %v, want both web instances", seen)
	}

	// ps:stop and ps:start of one process type.
	if r := d.ssh(admin, "", "ps:stop", app, "worker"); r.code != 0 {
		t.Fatalf("ps:stop: %s", r)
	}
	if ps := d.ssh(admin, "", "ps", app).stdout; strings.Contains(ps, "worker.1") || !strings.Contains(ps, "web.2: up") {
		t.Fatalf("after ps:stop worker:\n%s", ps)
	}
	if r := d.ssh(admin, "", "ps:start", app, "worker"); r.code != 0 {
		t.Fatalf("ps:start: %s", r)
	}
	if ps := d.ssh(admin, "", "ps", app).stdout; !strings.Contains(ps, "worker.1: up") {
		t.Fatalf("after ps:start worker:\n%s", ps)
	}

	// A second push: v3 runs the new code with the config.
	commit(t, repo, "VERSION", "2\n", "version 2")
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 || !strings.Contains(r.stderr, "Released v3") {
		t.Fatalf("second push: %s", r)
	}
	if a := d.answer(t, app); a.Version != "2" || a.Greeting != "hi there" {
		t.Fatalf("after the second push: %+v", a)
	}
	if r := d.ssh(admin, "", "ps", app); strings.Count(r.stdout, "  v3  ") != 3 {
		t.Errorf("not every instance runs v3:\n%s", r.stdout)
	}

	// Roll back to v2: a new release, v4, with v2's image and config.
	if r := d.ssh(admin, "", "releases:rollback", app, "v2"); r.code != 0 || !strings.Contains(r.stderr, "Released v4") {
		t.Fatalf("rollback: %s", r)
	}
	if a := d.answer(t, app); a.Version != "1" || a.Greeting != "hi there" || a.Release != "v4" {
		t.Fatalf("after rollback: %+v", a)
	}
	if r := d.ssh(admin, "", "config:get", app, "ODD"); r.code != 1 {
		t.Fatalf("rollback to v2 kept a var v2 did not have: %s", r)
	}
	rels := d.ssh(admin, "", "releases", app).stdout
	if !strings.Contains(rels, "v4  Rollback to v2") || !strings.Contains(rels, "current") {
		t.Errorf("releases:\n%s", rels)
	}

	// A build that fails rejects the push; the ref and the app stay.
	before := d.git(admin, repo, "ls-remote", "skiff", "main").stdout
	commit(t, repo, "Procfile", "web exec nothing\n", "broken Procfile")
	r = d.git(admin, repo, "push", "skiff", "main")
	if r.code == 0 || !strings.Contains(r.stderr, "pre-receive hook declined") || !strings.Contains(r.stderr, "Procfile") {
		t.Fatalf("push of a broken Procfile: %s", r)
	}
	if after := d.git(admin, repo, "ls-remote", "skiff", "main").stdout; after != before {
		t.Fatal("a failed build moved the ref")
	}
	if a := d.answer(t, app); a.Release != "v4" {
		t.Fatalf("a failed build changed what runs: %+v", a)
	}
	if r := d.ssh(admin, "", "builds", app); !strings.Contains(r.stdout, "failed") || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("builds:\n%s", r)
	}
	if r := d.ssh(admin, "", "builds:output", app); !strings.Contains(r.stdout, "Procfile") {
		t.Errorf("builds:output of the failed build:\n%s", r.stdout)
	}

	// One-off processes: the rest of the line goes to the app's shell as
	// typed, and the exit code comes back.
	r = d.ssh(admin, "", "run", app, `echo "$GREETING|$SKIFF_PROCESS"; exit 7`)
	if r.code != 7 || r.stdout != "hi there|run.1\n" {
		t.Fatalf("run: %s", r)
	}

	logs := d.ssh(admin, "", "logs", app, "-n", "500").stdout
	for _, want := range []string{"skiff: Deployed v4 (Rollback to v2) by admin", "app[worker.1]: worker up", "app[web.1]: request", "Release v"} {
		if !strings.Contains(logs, want) && want != "Release v" {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if r := d.ssh(admin, "", "logs", app, "-p", "router", "-n", "5"); !strings.Contains(r.stdout, `"host":"lifecycle.skiff.test"`) {
		t.Errorf("router log:\n%s", r)
	}

	if r := d.ssh(admin, "", "apps:destroy", app, "--force"); r.code != 0 {
		t.Fatal(r)
	}
	if code, _ := d.get(t, hostOf(app), "/"); code != 404 {
		t.Fatalf("a destroyed app answers %d", code)
	}
}
