package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nodeApp is a Node.js app (the skiff/nodejs buildpack) with a release
// command: it writes a marker to the volume mounted at /app/storage, and
// the web process serves what the marker says.
func nodeApp() map[string]string {
	return map[string]string{
		"package.json": `{"name": "lc-node", "version": "1.0.0", "private": true, "engines": {"node": "24.x"}, "scripts": {"start": "node server.js"}}` + "\n",
		"Procfile":     "web: node server.js\nrelease: node release.js\n",
		"release.js": `const fs = require("fs");
fs.mkdirSync("/app/storage", {recursive: true});
const line = "released " + process.env.SKIFF_RELEASE + " greeting=" + (process.env.GREETING || "");
fs.writeFileSync("/app/storage/marker", line);
fs.appendFileSync("/app/storage/releases.log", line + "\n");
console.log("release: migrated to " + process.env.SKIFF_RELEASE);
`,
		"server.js": `const fs = require("fs"), http = require("http");
http.createServer((req, res) => {
  let marker = "none";
  try { marker = fs.readFileSync("/app/storage/marker", "utf8"); } catch (e) {}
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify({marker, release: process.env.SKIFF_RELEASE, app: fs.realpathSync("/app")}));
}).listen(process.env.PORT);
`,
		"app.json": `{"scripts": {"dokku": {"predeploy": "echo predeploy ran in $PWD", "postdeploy": "echo postdeploy ran for $SKIFF_RELEASE"}}}` + "\n",
	}
}

type nodeAnswer struct{ Marker, Release, App string }

func (d *daemon) nodeAnswer(t *testing.T, app string) nodeAnswer {
	t.Helper()
	code, body := d.get(t, hostOf(app), "/")
	var a nodeAnswer
	if code != 200 || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("GET %s: %d %q", app, code, body)
	}
	return a
}

// TestReleasePhaseAndStorage: a Node app whose release command writes a
// marker to a volume; the release phase runs before the instances start,
// in Dokku's order, streamed to the pusher and kept; config:set and
// rollbacks run it too; storage commands, /app, and the release command
// never being a process type.
func TestReleasePhaseAndStorage(t *testing.T) {
	d, admin := fullDaemon(t)
	const app, vol = "lcphase", "lcphase-data"
	for _, cmd := range [][]string{{"apps:create", app}, {"storage:ensure-directory", vol}, {"storage:mount", app, vol + ":/app/storage"}} {
		if r := d.ssh(admin, "", cmd...); r.code != 0 {
			t.Fatalf("%v: %s", cmd, r)
		}
	}
	defer d.ssh(admin, "", "storage:destroy", vol, "--force")
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	if r := d.ssh(admin, "", "storage:ensure-directory", vol); r.code != 0 || !strings.Contains(r.stderr, "exists already") {
		t.Fatalf("storage:ensure-directory again: %s", r)
	}
	repo := newRepo(t, nodeApp())
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	r := d.git(admin, repo, "push", "skiff", "main")
	if r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	order := []string{"Running predeploy script…", "predeploy ran in /workspace", "Running release command…", "release: migrated to v1",
		"Release command finished in", "Starting web.1 of v1", "Released v1", "Running postdeploy script…", "postdeploy ran for v1", "Application deployed"}
	at := 0
	for _, want := range order {
		i := strings.Index(r.stderr[at:], want)
		if i < 0 {
			t.Fatalf("push output lacks %q in order:\n%s", want, r.stderr)
		}
		at += i
	}
	if a := d.nodeAnswer(t, app); a.Marker != "released v1 greeting=" || a.Release != "v1" || a.App != "/workspace" {
		t.Fatalf("after the first push: %+v", a)
	}
	if out := d.ssh(admin, "", "releases:output", app, "v1"); out.code != 0 || !strings.Contains(out.stdout, "release: migrated to v1") || !strings.Contains(out.stdout, "predeploy ran") {
		t.Fatalf("releases:output: %s", out)
	}
	if logs := d.ssh(admin, "", "logs", app, "-p", "release", "-n", "50").stdout; !strings.Contains(logs, "release: migrated to v1") {
		t.Fatalf("the app's log lacks the release command's output:\n%s", logs)
	}
	// release is never a process type of the formation.
	if r := d.ssh(admin, "", "ps:scale", app, "release=1"); r.code == 0 || !strings.Contains(r.stderr, "cannot be scaled") {
		t.Fatalf("ps:scale release=1: %s", r)
	}
	if ps := d.ssh(admin, "", "ps", app).stdout; strings.Contains(ps, "release.") {
		t.Fatalf("ps shows a release instance:\n%s", ps)
	}
	// /app is the app's directory, and the volume is there in one-offs.
	if r := d.ssh(admin, "", "run", app, "cd /app && ls && cat /app/storage/marker"); r.code != 0 || !strings.Contains(r.stdout, "server.js") || !strings.Contains(r.stdout, "released v1") {
		t.Fatalf("run in /app: %s", r)
	}

	// A config change is a new release: the release command runs again.
	r = d.ssh(admin, "", "config:set", app, "GREETING=hi")
	if r.code != 0 || !strings.Contains(r.stderr, "Running release command…") || !strings.Contains(r.stderr, "release: migrated to v2") {
		t.Fatalf("config:set: %s", r)
	}
	if a := d.nodeAnswer(t, app); a.Marker != "released v2 greeting=hi" {
		t.Fatalf("after config:set: %+v", a)
	}
	// Storage: listed, measured, and a mount change is a release too.
	if r := d.ssh(admin, "", "storage:list", app); !strings.Contains(r.stdout, vol+":/app/storage") {
		t.Fatalf("storage:list: %s", r)
	}
	var report struct {
		Volumes []struct {
			Name      string   `json:"name"`
			Apps      []string `json:"apps"`
			UsedBytes int64    `json:"used_bytes"`
		} `json:"volumes"`
	}
	rep := d.ssh(admin, "", "storage:report", app, "--format", "json")
	if err := json.Unmarshal([]byte(rep.stdout), &report); err != nil || len(report.Volumes) != 1 || report.Volumes[0].UsedBytes <= 0 || report.Volumes[0].Apps[0] != app {
		t.Fatalf("storage:report: %s %v", rep, err)
	}
	if r := d.ssh(admin, "", "storage:destroy", vol, "--force"); r.code == 0 || !strings.Contains(r.stderr, "storage:unmount it first") {
		t.Fatalf("storage:destroy of a mounted volume: %s", r)
	}
	if r := d.ssh(admin, "", "storage:unmount", app, vol+":/app/storage"); r.code != 0 || !strings.Contains(r.stderr, "Releasing v3 (Unmount") {
		t.Fatalf("storage:unmount: %s", r)
	}
	if a := d.nodeAnswer(t, app); !strings.HasPrefix(a.Marker, "released v3") || a.Release != "v3" {
		// The marker is now the instance's own (ephemeral) file: not the volume's.
		if a.Marker != "none" {
			t.Fatalf("after the unmount: %+v", a)
		}
	}
	// A rollback to v2 brings the mount back (and runs v2's release command).
	if r := d.ssh(admin, "", "releases:rollback", app, "v2"); r.code != 0 || !strings.Contains(r.stderr, "release: migrated to v4") {
		t.Fatalf("rollback: %s", r)
	}
	if a := d.nodeAnswer(t, app); a.Marker != "released v4 greeting=hi" {
		t.Fatalf("after the rollback: %+v", a)
	}
	if r := d.ssh(admin, "", "run", app, "cat /app/storage/releases.log"); !strings.Contains(r.stdout, "released v1") || !strings.Contains(r.stdout, "released v4") || strings.Contains(r.stdout, "released v3") {
		t.Fatalf("the volume's log of releases: %s", r)
	}

	// Another user sees neither the app nor its storage.
	bob := d.addUser("bob-lc", false)
	for _, cmd := range [][]string{{"storage:list", app}, {"storage:destroy", vol, "--force"}, {"releases:output", app}} {
		if r := d.ssh(bob, "", cmd...); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
			t.Errorf("bob %v: %s", cmd, r)
		}
	}
	if r := d.ssh(bob, "", "storage:report", "--format", "json"); strings.Contains(r.stdout, vol) {
		t.Errorf("bob's storage:report shows %s: %s", vol, r.stdout)
	}
	if r := d.ssh(bob, "", "apps:create", "bob-lc-app"); r.code != 0 {
		t.Fatal(r)
	}
	defer d.ssh(admin, "", "apps:destroy", "bob-lc-app", "--force")
	if r := d.ssh(bob, "", "storage:mount", "bob-lc-app", vol+":/data"); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("bob mounted another's storage: %s", r)
	}

	// apps:destroy keeps the volume unless --volumes.
	if r := d.ssh(admin, "", "apps:destroy", app, "--force"); r.code != 0 || !strings.Contains(r.stderr, "Kept storage "+vol) {
		t.Fatalf("apps:destroy: %s", r)
	}
	if r := d.ssh(admin, "", "storage:report", "--format", "json"); !strings.Contains(r.stdout, vol) {
		t.Fatalf("the volume went with its app: %s", r)
	}
}

// TestFailingReleaseCommand: a release command that fails, or outlives its
// timeout, rejects the push (or the config:set) with its last lines; the
// old release keeps serving a client that probes all along, without one
// failed request.
func TestFailingReleaseCommand(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "lcfail"
	files := pyApp("1")
	files["Procfile"] = "web: exec python3 server.py\nrelease: echo migrating; test -z \"$BREAK_RELEASE\" || { echo broken by config >&2; exit 4; }\n"
	repo := newRepo(t, files)
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 || !strings.Contains(r.stderr, "migrating") {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	certPEM, keyPEM, pool := selfSigned(t, hostOf(app))
	if r := d.ssh(admin, string(certPEM)+string(keyPEM), "certs:add", app); r.code != 0 {
		t.Fatalf("certs:add: %s", r)
	}
	l := startLoad(d, hostOf(app), pool)
	commit(t, repo, "VERSION", "2\n", "v2")
	commit(t, repo, "Procfile", "web: exec python3 server.py\nrelease: echo migrating; echo 'error: relation \"users\" does not exist' >&2; exit 3\n", "a failing migration")
	r := d.git(admin, repo, "push", "skiff", "main")
	if r.code == 0 || !strings.Contains(r.stderr, "Release v2 failed, the previous release keeps serving") ||
		!strings.Contains(r.stderr, "the release command exited with status 3") || !strings.Contains(r.stderr, `error: relation "users" does not exist`) {
		t.Fatalf("push of a failing release command: %s", r)
	}
	if strings.Contains(r.stderr, "Starting web.1 of v2") {
		t.Fatalf("instances of the failed release started:\n%s", r.stderr)
	}
	// A release command past its timeout.
	if r := d.ssh(admin, "", "checks:set", app, "release-timeout=5"); r.code != 0 {
		t.Fatal(r)
	}
	commit(t, repo, "Procfile", "web: exec python3 server.py\nrelease: echo waiting forever; sleep 600\n", "a hanging migration")
	start := time.Now()
	r = d.git(admin, repo, "push", "skiff", "main")
	if r.code == 0 || !strings.Contains(r.stderr, "did not finish within 5s") || !strings.Contains(r.stderr, "waiting forever") || time.Since(start) > 3*time.Minute {
		t.Fatalf("push of a hanging release command: %s", r)
	}
	// A config change is a release too: one that breaks the release
	// command is refused the same way, and the config stays as it was.
	r = d.ssh(admin, "", "config:set", app, "BREAK_RELEASE=1")
	if r.code == 0 || !strings.Contains(r.stderr, "Release v4 failed, the previous release keeps serving") ||
		!strings.Contains(r.stderr, "exited with status 4") || !strings.Contains(r.stderr, "broken by config") {
		t.Fatalf("config:set that breaks the release command: %s", r)
	}
	if c := d.ssh(admin, "", "config", app); c.code != 0 || strings.Contains(c.stdout, "BREAK_RELEASE") {
		t.Fatalf("the refused config change stayed: %s", c)
	}
	time.Sleep(time.Second)
	l.finish()
	if l.ok.Load() == 0 || l.failed.Load() != 0 {
		t.Fatalf("%d requests ok, %d failed: %v", l.ok.Load(), l.failed.Load(), l.failures)
	}
	d.ssh(admin, "", "certs:remove", app) // plain HTTP again, for answer
	if a := d.answer(t, app); a.Version != "1" || a.Release != "v1" {
		t.Fatalf("the old release lost traffic: %+v", a)
	}
	rels := d.ssh(admin, "", "releases", app).stdout
	if !regexp.MustCompile(`v2 .*failed`).MatchString(rels) || !regexp.MustCompile(`v3 .*failed`).MatchString(rels) ||
		!regexp.MustCompile(`v4 .*failed`).MatchString(rels) {
		t.Fatalf("releases:\n%s", rels)
	}
	if out := d.ssh(admin, "", "releases:output", app, "v2").stdout; !strings.Contains(out, `relation "users" does not exist`) {
		t.Fatalf("releases:output v2: %q", out)
	}
}

// TestDetachedRuns: run:detached returns at once with a name; run:list
// shows it; run:logs -t follows it to its end and exits with its status;
// run:stop ends one; they outlive the SSH session that started them.
func TestDetachedRuns(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "lcdetach"
	repo := newRepo(t, pyApp("1"))
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	start := time.Now()
	r := d.ssh(admin, "", "run:detached", app, "echo started; sleep 4; echo 'done in' $(pwd); exit 7")
	name := strings.TrimSpace(r.stdout)
	if r.code != 0 || !regexp.MustCompile(`^run\.\d{4}$`).MatchString(name) || time.Since(start) > 20*time.Second {
		t.Fatalf("run:detached: %s", r)
	}
	if list := d.ssh(admin, "", "run:list", app); !strings.Contains(list.stdout, name) || !strings.Contains(list.stdout, "running") {
		t.Fatalf("run:list: %s", list)
	}
	logs := d.ssh(admin, "", "run:logs", app, name, "-t")
	if logs.code != 7 || !strings.Contains(logs.stdout, "started") || !strings.Contains(logs.stdout, "done in /workspace") {
		t.Fatalf("run:logs -t: %s", logs)
	}
	if list := d.ssh(admin, "", "run:list", app); !strings.Contains(list.stdout, "exited with status 7") {
		t.Fatalf("run:list after the end: %s", list)
	}
	if logs := d.ssh(admin, "", "run:logs", app, name); !strings.Contains(logs.stdout, "done in") {
		t.Fatalf("run:logs afterwards: %s", logs)
	}
	long := strings.TrimSpace(d.ssh(admin, "", "run:detached", app, "sleep 600").stdout)
	if r := d.ssh(admin, "", "run:stop", app, long); r.code != 0 {
		t.Fatalf("run:stop: %s", r)
	}
	if list := d.ssh(admin, "", "run:list", app); strings.Contains(list.stdout, long) {
		t.Fatalf("a stopped run is listed: %s", list)
	}
	if r := d.ssh(admin, "", "run:logs", app, "run.0000"); r.code == 0 || !strings.Contains(r.stderr, "no detached run") {
		t.Fatalf("run:logs of an unknown run: %s", r)
	}
}
