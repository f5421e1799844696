package deploy_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// push → v1 routed; a config change → v2; a rollback → v3 with v1's config.
func TestPushConfigRollback(t *testing.T) {
	m := newMachine(t)
	d := m.start(nil)
	a := d.createApp("shop")
	if code, _ := a.get("/"); code != 503 {
		t.Fatalf("an app never deployed answers %d", code)
	}
	out := a.mustPush(webApp)
	for _, want := range []string{"Releasing v1", "Starting web.1 of v1", "Switching traffic to 1 web instance(s)", "Released v1", "http://shop." + baseDomain} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	a.serving("v1")
	if code, body := a.get("/"); code != 200 || body != "hello from web.1\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}

	ctx := adminCtx()
	if err := d.pipeline.SetConfig(ctx, a.app, &skiff.ConfigChange{Set: map[string]string{"GREETING": "hi"}}, true, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	a.serving("v2")
	if _, env := a.get("/env"); !strings.Contains(env, `"GREETING=hi"`) {
		t.Fatalf("config not in the environment:\n%s", env)
	}
	if err := d.pipeline.Rollback(ctx, a.app, 1, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	a.serving("v3")
	if _, env := a.get("/env"); strings.Contains(env, "GREETING") {
		t.Fatalf("the rollback kept v2's config:\n%s", env)
	}
	if got := a.releases(); got != "v1:deployed v2:deployed v3:deployed*" {
		t.Fatalf("releases %s", got)
	}
	if cfg, _ := d.db.Config(ctx, a.app.ID); len(cfg) != 0 {
		t.Fatalf("config after the rollback: %v", cfg)
	}
	if got := a.instances(); got != "v3:web.1:up" {
		t.Fatalf("instances %s", got)
	}
}

// A release whose instances never get ready is failed, and v1 keeps all
// the traffic; so is one that crashes at once.
func TestUnhealthyReleaseKeepsV1(t *testing.T) {
	m := newMachine(t)
	m.ready = time.Second
	d := m.start(nil)
	a := d.createApp("shop")
	a.mustPush(webApp)
	for _, procfile := range []string{"web: sleep 1h\n", "web: exit 1\n"} {
		out, err := a.push(map[string]string{"Procfile": procfile})
		if err == nil || !strings.Contains(skiff.ErrorMessage(err), "the previous release keeps serving") {
			t.Fatalf("%q: push %v\n%s", procfile, err, out)
		}
		a.serving("v1")
		if got := a.instances(); got != "v1:web.1:up" {
			t.Fatalf("%q: instances %s", procfile, got)
		}
	}
	if got := a.releases(); got != "v1:deployed* v2:failed v3:failed" {
		t.Fatalf("releases %s", got)
	}
	// The failure says why, with the instance's last lines.
	_, err := a.push(map[string]string{"Procfile": "web: exit 3\n"})
	if msg := skiff.ErrorMessage(err); !strings.Contains(msg, "web.1 did not become ready") || strings.Count(msg, "web.1") != 1 || !strings.Contains(msg, "exiting 3") {
		t.Fatalf("the failure: %s", msg)
	}
	// A build that fails leaves everything as it was.
	d.builder.FailNext(skiff.Errorf(skiff.EINVALID, "no buildpack detected"))
	if _, err := a.push(webApp); err == nil || !strings.Contains(skiff.ErrorMessage(err), "Build failed") {
		t.Fatalf("a failed build: %v", err)
	}
	a.serving("v1")
}

// Scaling keeps the instances it can: up adds, down removes the highest.
func TestScaleKeepsInstances(t *testing.T) {
	m := newMachine(t)
	d := m.start(nil)
	a := d.createApp("shop")
	a.mustPush(map[string]string{"Procfile": "web: serve\nworker: sleep 1h\n"})
	first := a.instanceIDs("web")
	ctx := adminCtx()
	if err := d.pipeline.Scale(ctx, a.app, map[string]int{"web": 3, "worker": 1}, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if got := a.instances(); got != "v1:web.1:up v1:web.2:up v1:web.3:up v1:worker.1:up" {
		t.Fatalf("scaled up: %s", got)
	}
	if ids := a.instanceIDs("web"); ids[0] != first[0] {
		t.Fatalf("scaling up replaced web.1: %v, was %v", ids, first)
	}
	// Traffic reaches the new ones too.
	seen := map[string]bool{}
	for range 30 {
		_, body := a.get("/")
		seen[body] = true
	}
	if len(seen) != 3 {
		t.Fatalf("answers from %d instances: %v", len(seen), seen)
	}
	kept := a.instanceIDs("web")[:2]
	if err := d.pipeline.Scale(ctx, a.app, map[string]int{"web": 2, "worker": 0}, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if got := a.instances(); got != "v1:web.1:up v1:web.2:up" {
		t.Fatalf("scaled down: %s", got)
	}
	if ids := a.instanceIDs("web"); ids[0] != kept[0] || ids[1] != kept[1] {
		t.Fatalf("scaling down replaced instances: %v, was %v", ids, kept)
	}
	if err := d.pipeline.Scale(ctx, a.app, map[string]int{"clock": 1}, &strings.Builder{}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("scaling a type the release lacks: %v", err)
	}
	if got := a.releases(); got != "v1:deployed*" {
		t.Fatalf("scaling made a release: %s", got)
	}
}

// The daemon killed just after the switch (the new instances serve, the
// old ones were told to stop and are dead) comes back serving the new
// release at once, with exactly one current release, and nothing of the
// old one left running.
func TestKilledAfterSwitch(t *testing.T) {
	m := newMachine(t)
	d1 := m.start(nil)
	a := d1.createApp("shop")
	a.mustPush(webApp)
	old := a.instanceIDs("web")

	h := &hooks{}
	d1.kill()
	d2 := m.start(h)
	d2.reconcile()
	a2 := a.on(d2)
	h.beforeStop = func(id string) {
		if id != old[0] {
			return
		}
		// The old instance got its SIGTERM and ended; then the daemon dies.
		d2.kill()
		m.host.Kill(id)
		d2.freeze()
	}
	go a2.receive(a2.prepare(map[string]string{"Procfile": "web: serve\n", "VERSION": "2"})) // the daemon dies under it
	<-d2.killed
	d3 := m.start(nil)
	a3 := a.on(d3)
	// Routes are restored before the router serves: the first request
	// gets v2, whose instance never stopped serving.
	a3.serving("v2")
	d3.reconcile()
	a3.serving("v2")
	if got := a3.releases(); got != "v1:deployed v2:deployed*" {
		t.Fatalf("releases after the restart: %s", got)
	}
	waitUntil(t, "only v2 running", 10*time.Second, func() bool { return a3.instances() == "v2:web.1:up" })
}

// kill -9 of the daemon at each step of a deploy, then a restart (Recover
// before serving, Reconcile after): exactly one release is current, the
// router serves it from the first request, only its instances are left,
// nothing is left pending or building, and the next push works.
func TestInterruptedDeploy(t *testing.T) {
	v2 := map[string]string{"Procfile": "web: serve\n", "VERSION": "2"}
	for _, tc := range []struct {
		name     string
		first    bool // the interrupted deploy is the app's first
		at       func(d *daemon, h *hooks, interrupt func())
		releases string // after the restart
		serving  string
	}{
		{"building", false, func(d *daemon, h *hooks, interrupt func()) {
			release := d.builder.Hold()
			go func() {
				for deadline := time.Now().Add(10 * time.Second); !strings.Contains(buildsOf(d), "building") && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				interrupt() // returns when the test ends
				release()
			}()
		}, "v1:deployed*", "v1"},
		{"released", false, func(d *daemon, h *hooks, interrupt func()) {
			h.afterCreateRelease = interrupt
		}, "v1:deployed* v2:failed", "v1"},
		{"starting", false, func(d *daemon, h *hooks, interrupt func()) {
			h.beforeStart = func(*skiff.InstanceSpec) { interrupt() }
		}, "v1:deployed* v2:failed", "v1"},
		{"started", false, func(d *daemon, h *hooks, interrupt func()) {
			h.afterStart = func(*skiff.Instance) { interrupt() }
		}, "v1:deployed* v2:failed", "v1"},
		// Switched, not yet committed: the old instances still run, and
		// the push was rejected, so the old release stays.
		{"switched", false, func(d *daemon, h *hooks, interrupt func()) {
			h.afterSwitch = interrupt
		}, "v1:deployed* v2:failed", "v1"},
		// A first release that had the traffic is the one to keep.
		{"first release switched", true, func(d *daemon, h *hooks, interrupt func()) {
			h.afterSwitch = interrupt
		}, "v1:deployed*", "v1"},
		{"first release starting", true, func(d *daemon, h *hooks, interrupt func()) {
			h.beforeStart = func(*skiff.InstanceSpec) { interrupt() }
		}, "v1:failed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t)
			d1 := m.start(nil)
			a := d1.createApp("shop")
			if !tc.first {
				a.mustPush(webApp)
			}
			d1.kill()
			h := &hooks{}
			d2 := m.start(h)
			d2.reconcile()
			a2 := a.on(d2)
			var once sync.Once
			interrupt := func() {
				once.Do(func() {
					d2.kill()
					d2.freeze()
				})
			}
			tc.at(d2, h, interrupt)
			go a2.receive(a2.prepare(v2))
			<-d2.killed

			d3 := m.start(nil)
			a3 := a.on(d3)
			if tc.serving != "" {
				a3.serving(tc.serving)
			}
			d3.reconcile()
			if got := a3.releases(); got != tc.releases {
				t.Fatalf("releases after the restart: %s, want %s", got, tc.releases)
			}
			if tc.serving != "" {
				a3.serving(tc.serving)
				waitUntil(t, "only "+tc.serving+" running", 10*time.Second, func() bool { return a3.instances() == tc.serving+":web.1:up" })
			} else if got := a3.instances(); got != "" {
				t.Fatalf("instances of a never deployed app: %s", got)
			}
			if b := buildsOf(d3); strings.Contains(b, "building") {
				t.Fatalf("builds after the restart: %s", b)
			}
			out := a3.mustPush(map[string]string{"Procfile": "web: serve\n", "VERSION": "3"})
			if !strings.Contains(out, "Released v") {
				t.Fatalf("the next push:\n%s", out)
			}
		})
	}
}

// buildsOf lists the statuses of the app builds of the daemon's store.
func buildsOf(d *daemon) string {
	apps, _ := d.db.ListApps(context.Background(), skiff.AppFilter{})
	var s []string
	for _, a := range apps {
		bs, _ := d.db.ListBuilds(context.Background(), a.ID, 100)
		for _, b := range bs {
			s = append(s, string(b.Status))
		}
	}
	return strings.Join(s, " ")
}

// A config change whose deploy had the traffic when the daemon died, and
// whose old release has no instance left, is made current with the very
// change that made it (a build-time var stays build-time).
func TestPromotedConfigChangeIsExact(t *testing.T) {
	m := newMachine(t)
	d1 := m.start(nil)
	a := d1.createApp("shop")
	a.mustPush(webApp)
	old := a.instanceIDs("web")
	d1.kill()
	h := &hooks{}
	d2 := m.start(h)
	d2.reconcile()
	h.afterSwitch = func() {
		d2.kill()
		d2.freeze()
	}
	go d2.pipeline.SetConfig(adminCtx(), a.app, &skiff.ConfigChange{Set: map[string]string{"NPM_TOKEN": "s3cret"}, Build: true}, true, io.Discard)
	<-d2.killed
	// Whatever ran v1 is gone meanwhile.
	s := m.host.Scheduler(m.sched)
	if err := s.Stop(context.Background(), old[0], time.Second); err != nil {
		t.Fatal(err)
	}
	s.Close()

	d3 := m.start(nil)
	a3 := a.on(d3)
	a3.serving("v2")
	d3.reconcile()
	if got := a3.releases(); got != "v1:deployed v2:deployed*" {
		t.Fatalf("releases %s", got)
	}
	if cfg, err := d3.db.BuildConfig(context.Background(), a.app.ID); err != nil || cfg["NPM_TOKEN"] != "s3cret" {
		t.Fatalf("build config after the promotion: %v %v", cfg, err)
	}
}
