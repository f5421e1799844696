package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// Custom domains, maintenance mode and health checks, through SSH
// commands, as the router then serves them.
func TestRoutingCommands(t *testing.T) {
	d, admin := fullDaemon(t)
	const app, other = "routed", "routed-other"
	for _, name := range []string{app, other} {
		repo := newRepo(t, pyApp("1"))
		if r := d.git(admin, repo, "push", d.remote(name), "main"); r.code != 0 {
			t.Fatalf("push %s: %s", name, r)
		}
		defer d.ssh(admin, "", "apps:destroy", name, "--force")
	}

	// Domains: a host belongs to one app; the platform's own names are not
	// for taking.
	if r := d.ssh(admin, "", "domains:add", app, "WWW.Example.ORG."); r.code != 0 {
		t.Fatalf("domains:add: %s", r)
	}
	if code, body := d.get(t, "www.example.org", "/"); code != 200 || !strings.Contains(body, `"version": "1"`) {
		t.Fatalf("custom domain: %d %s", code, body)
	}
	for _, tc := range []struct{ host, want string }{
		{"www.example.org", "already attached to another app"},
		{app + ".skiff.test", "under the server's own domain"},
		{"localhost", "invalid domain"},
		{"10.0.0.1", "invalid domain"},
	} {
		if r := d.ssh(admin, "", "domains:add", other, tc.host); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("domains:add %s %s: %s", other, tc.host, r)
		}
	}
	if r := d.ssh(admin, "", "domains", app, "--format", "json"); !strings.Contains(r.stdout, `"www.example.org"`) {
		t.Errorf("domains: %s", r)
	}
	// apps:info sums the app up: its domains, current release and scale.
	if r := d.ssh(admin, "", "apps:info", app); r.code != 0 || !strings.Contains(r.stdout, "www.example.org") ||
		!regexp.MustCompile(`Release: +v1 \(Deploy [0-9a-f]{7}\)`).MatchString(r.stdout) || !regexp.MustCompile(`Formation: +web=1`).MatchString(r.stdout) {
		t.Errorf("apps:info:\n%s", r)
	}
	if code, _ := d.get(t, "nowhere.example.org", "/"); code != 404 {
		t.Errorf("unknown host: %d", code)
	}

	// Maintenance: 503 with the page, the app keeps running.
	d.ssh(admin, "<h1>back soon</h1>", "maintenance:page", app)
	if r := d.ssh(admin, "", "maintenance:on", app); r.code != 0 {
		t.Fatal(r)
	}
	if code, body := d.get(t, hostOf(app), "/"); code != 503 || !strings.Contains(body, "back soon") {
		t.Fatalf("maintenance: %d %q", code, body)
	}
	if ps := d.ssh(admin, "", "ps", app).stdout; !strings.Contains(ps, "web.1: up") {
		t.Fatalf("maintenance stopped the app:\n%s", ps)
	}
	d.ssh(admin, "", "maintenance:off", app)
	if code, _ := d.get(t, hostOf(app), "/"); code != 200 {
		t.Fatalf("after maintenance:off: %d", code)
	}

	// Router settings: a body cap answered by the router itself.
	post := func() int {
		req, _ := http.NewRequest("POST", "http://"+d.addr.HTTP+"/", strings.NewReader(strings.Repeat("x", 4096)))
		req.Host = hostOf(app)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if r := d.ssh(admin, "", "proxy:set", app, "max-body-size", "1k"); r.code != 0 {
		t.Fatalf("proxy:set: %s", r)
	}
	if code := post(); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 4 KiB body with a 1 KiB cap: %d", code)
	}
	d.ssh(admin, "", "proxy:set", app, "max-body-size")
	if code := post(); code == http.StatusRequestEntityTooLarge {
		t.Errorf("the cap stayed after proxy:set without a value")
	}

	// Health checks: new instances that fail the check take no traffic,
	// and the change that made them is not applied.
	if r := d.ssh(admin, "", "checks:set", app, "path=/health", "timeout=1", "deadline=4"); r.code != 0 {
		t.Fatalf("checks:set: %s", r)
	}
	if r := d.ssh(admin, "", "ps:restart", app); r.code != 0 {
		t.Fatalf("restart with a passing check: %s", r)
	}
	before := d.answer(t, app)
	r := d.ssh(admin, "", "config:set", app, "UNHEALTHY=1")
	if r.code == 0 || !strings.Contains(r.stderr, "health check") {
		t.Fatalf("config:set that makes the app unhealthy: %s", r)
	}
	if a := d.answer(t, app); a.Release != before.Release {
		t.Fatalf("a release that failed its check took traffic: %+v, before %+v", a, before)
	}
	if r := d.ssh(admin, "", "config:get", app, "UNHEALTHY"); r.code != 1 {
		t.Fatalf("the failed change was applied: %s", r)
	}
	if ps := d.ssh(admin, "", "ps", app).stdout; strings.Count(ps, "web.") != 1 {
		t.Fatalf("instances of the failed release are left:\n%s", ps)
	}
}

// app.json's startup check of web is the health check new instances pass,
// and a malformed app.json fails the push with the reason.
func TestAppJSONHealthcheck(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "appjson"
	files := pyApp("1")
	files["app.json"] = `{"healthchecks": {"web": [{"type": "startup", "path": "/health", "attempts": 2, "timeout": 1, "wait": 1}]}}`
	repo := newRepo(t, files)
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	if r := d.ssh(admin, "", "config:set", app, "UNHEALTHY=1"); r.code == 0 || !strings.Contains(r.stderr, "health check") {
		t.Fatalf("an unhealthy release under app.json's check: %s", r)
	}
	commit(t, repo, "app.json", `{"healthchecks": {"web": [{"path": "health"}]}}`, "bad app.json")
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code == 0 || !strings.Contains(r.stderr, "app.json") {
		t.Fatalf("push of a malformed app.json: %s", r)
	}
}
