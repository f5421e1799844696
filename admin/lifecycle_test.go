package admin_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStorageAccess: a volume is its maker's, and visible to the users of
// an app it is mounted into; to everyone else it does not exist, whatever
// the verb. Host paths are never mounted.
func TestStorageAccess(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	s.must("bob", "apps:create", "blog")
	r := s.must("alice", "storage:ensure-directory", "shop-data", "--size", "64m")
	contains(t, "ensure-directory", r.stderr, "Ensuring storage shop-data exists", "storage:mount <app> shop-data:/app/storage")
	if r := s.must("alice", "storage:ensure-directory", "shop-data"); !strings.Contains(r.stderr, "exists already") {
		t.Errorf("again: %s", r)
	}
	if r := s.run("bob", "", "storage:ensure-directory", "shop-data"); r.code != 1 || !strings.Contains(r.stderr, "taken") {
		t.Errorf("bob takes alice's name: %s", r)
	}
	for _, args := range [][]string{
		{"storage:mount", "blog", "shop-data:/data"},
		{"storage:destroy", "shop-data", "--force"},
		{"storage:resize", "shop-data", "1g"},
		{"storage:mount", "blog", "nosuch:/data"}, // the same answer for a volume that does not exist
	} {
		if r := s.run("bob", "", args...); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
			t.Errorf("bob %v: %s", args, r)
		}
	}
	if r := s.must("bob", "storage:report", "--format", "json"); strings.Contains(r.stdout, "shop-data") {
		t.Errorf("bob's report shows alice's volume: %s", r.stdout)
	}
	if r := s.run("alice", "", "storage:mount", "shop", "/etc:/data"); r.code != 1 || !strings.Contains(r.stderr, "only its own storage") {
		t.Errorf("a host path: %s", r)
	}
	if r := s.run("alice", "", "storage:mount", "shop", "shop-data:/proc/x"); r.code != 1 || !strings.Contains(r.stderr, "belongs to the platform") {
		t.Errorf("a mount over /proc: %s", r)
	}
	if r := s.run("alice", "", "storage:mount", "blog", "shop-data:/data"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("alice mounts into bob's app: %s", r)
	}
	s.must("alice", "storage:mount", "shop", "shop-data:/app/storage")
	if r := s.must("alice", "storage:list", "shop"); !strings.Contains(r.stdout, "shop-data:/app/storage") {
		t.Errorf("storage:list: %s", r)
	}
	if r := s.must("alice", "storage:report", "shop"); !strings.Contains(r.stdout, "shop-data") || !strings.Contains(r.stdout, "shop") {
		t.Errorf("storage:report shop: %s", r)
	}
	// Given access to shop, bob sees the volume it mounts.
	s.must("alice", "access:add", "shop", "bob")
	if r := s.must("bob", "storage:report", "--format", "json"); !strings.Contains(r.stdout, "shop-data") {
		t.Errorf("bob, a user of shop, does not see its volume: %s", r.stdout)
	}
	// He may mount it again in shop, but not carry it into his own app,
	// where it would outlive his access to shop.
	if r := s.run("bob", "", "storage:mount", "blog", "shop-data:/data"); r.code != 1 || !strings.Contains(r.stderr, "not yours") {
		t.Errorf("bob mounts shop's volume into blog: %s", r)
	}
	s.must("bob", "storage:mount", "shop", "shop-data:/data", "--process-type", "worker")
	s.must("bob", "storage:unmount", "shop", "shop-data:/data")
	s.must("alice", "access:remove", "shop", "bob")
	if r := s.must("bob", "storage:report", "--format", "json"); strings.Contains(r.stdout, "shop-data") {
		t.Errorf("bob, no longer a user of shop, sees its volume: %s", r.stdout)
	}
	s.must("alice", "access:add", "shop", "bob")
	if r := s.run("alice", "", "storage:destroy", "shop-data", "--force"); r.code != 1 || !strings.Contains(r.stderr, "storage:unmount it first") {
		t.Errorf("destroy of a mounted volume: %s", r)
	}
	if r := s.run("alice", "", "storage:destroy", "shop-data"); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("destroy without --force: %s", r)
	}
	s.must("alice", "storage:unmount", "shop", "shop-data:/app/storage")
	s.must("alice", "storage:destroy", "shop-data", "--force")
	if r := s.must("root", "storage:report", "--format", "json"); strings.Contains(r.stdout, "shop-data") {
		t.Errorf("the destroyed volume is listed: %s", r.stdout)
	}
}

func TestLifecycleCommandsHelpAndUsage(t *testing.T) {
	s := newServer(t)
	r := s.must("alice", "help")
	for _, want := range []string{"storage:ensure-directory", "storage:mount", "storage:unmount", "storage:list", "storage:report", "storage:resize",
		"storage:destroy", "cron:list", "cron:run", "cron:history", "cron:output", "cron:suspend", "cron:resume", "run:detached", "run:list",
		"run:logs", "run:stop", "releases:output", "release-timeout"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %s", want)
		}
	}
	s.must("alice", "apps:create", "shop")
	if r := s.must("alice", "cron:list", "shop"); !strings.Contains(r.stderr, "no cron jobs") {
		t.Errorf("cron:list of an app without jobs: %s", r)
	}
	if r := s.run("alice", "", "cron:run", "shop", "../etc"); r.code != 1 || !strings.Contains(r.stderr, "invalid cron job id") {
		t.Errorf("cron:run with a bad id: %s", r)
	}
	if r := s.run("alice", "", "cron:run", "shop", "abcdefghij"); r.code != 1 || !strings.Contains(r.stderr, "not been deployed") {
		t.Errorf("cron:run before a deploy: %s", r)
	}
	if r := s.run("bob", "", "cron:history", "shop"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("bob's cron:history of alice's app: %s", r)
	}
	if r := s.run("alice", "", "run:detached", "shop", "sleep 1s"); r.code != 1 || !strings.Contains(r.stderr, "not been deployed") {
		t.Errorf("run:detached before a deploy: %s", r)
	}
	if r := s.run("alice", "", "checks:set", "shop", "release-timeout=100000"); r.code != 1 || !strings.Contains(r.stderr, "1 to 86400") {
		t.Errorf("a release timeout past a day: %s", r)
	}
	if r := s.must("alice", "checks:set", "shop", "release-timeout=600"); !strings.Contains(r.stdout, "Release timeout") || !strings.Contains(r.stdout, "600s") {
		t.Errorf("checks:set release-timeout: %s", r)
	}
}

// TestDetachedRunCommands: run:detached, run:list, run:logs -t and
// run:stop over the pipeline and the in-memory scheduler.
func TestDetachedRunCommands(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	s.deploy("shop", "web: serve\n")
	r := s.must("alice", "run:detached", "shop", "exit 3")
	name := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(name, "run.") || len(name) != 8 {
		t.Fatalf("run:detached printed %q", r.stdout)
	}
	logs := s.run("alice", "", "run:logs", "shop", name, "-t")
	if logs.code != 3 || !strings.Contains(logs.stdout, "exiting 3") {
		t.Fatalf("run:logs -t: exit %d %s", logs.code, logs)
	}
	if r := s.must("alice", "run:list", "shop"); !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, "exited with status 3") {
		t.Errorf("run:list: %s", r)
	}
	long := strings.TrimSpace(s.must("alice", "run:detached", "shop", "sleep 1m").stdout)
	if r := s.run("bob", "", "run:stop", "shop", long); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("bob stops alice's run: %s", r)
	}
	s.must("alice", "run:stop", "shop", long)
	if r := s.must("alice", "run:list", "shop"); strings.Contains(r.stdout, long) {
		t.Errorf("a stopped run is listed: %s", r)
	}
	if r := s.run("alice", "", "run:logs", "shop", "run.0000"); r.code != 1 || !strings.Contains(r.stderr, "no detached run") {
		t.Errorf("run:logs of an unknown run: %s", r)
	}
	// A command with terminal escapes, which run:list would print to the
	// app's other users, is refused.
	s.must("alice", "access:add", "shop", "bob")
	if r := s.run("bob", "", "run:detached", "shop", "exit 0 \x1b]0;owned\x07"); r.code != 1 || !strings.Contains(r.stderr, "control character") {
		t.Errorf("run:detached with escapes: %s", r)
	}
	if r := s.must("alice", "run:list", "shop"); strings.Contains(r.stdout, "\x1b") {
		t.Errorf("run:list prints escapes: %q", r.stdout)
	}
}

// TestCronAccess: an app's cron jobs and runs are its users' alone; a run
// or job of another app is not found through this one, whatever its id.
func TestCronAccess(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	s.must("bob", "apps:create", "blog")
	s.deployFiles("shop", map[string]string{"Procfile": "web: serve\n", "app.json": `{"cron": [{"command": "exit 0", "schedule": "@daily"}]}`})
	s.deployFiles("blog", map[string]string{"Procfile": "web: serve\n", "app.json": `{"cron": [{"command": "sleep 1ms", "schedule": "@daily"}]}`})
	jobOf := func(who, app string) string {
		t.Helper()
		var jobs []struct{ ID string }
		r := s.must(who, "cron:list", app, "--format", "json")
		if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 1 {
			t.Fatalf("cron:list %s: %s %v", app, r, err)
		}
		return jobs[0].ID
	}
	shopJob, blogJob := jobOf("alice", "shop"), jobOf("bob", "blog")
	if r := s.must("alice", "cron:run", "shop", shopJob); !strings.Contains(r.stdout, "exiting 0") || !strings.Contains(r.stderr, "Run #1 succeeded") {
		t.Fatalf("cron:run shop: %s", r)
	}
	if r := s.must("bob", "cron:run", "blog", blogJob); !strings.Contains(r.stderr, "Run #2 succeeded") {
		t.Fatalf("cron:run blog: %s", r)
	}
	for _, args := range [][]string{
		{"cron:list", "shop"}, {"cron:run", "shop", shopJob}, {"cron:history", "shop"}, {"cron:output", "shop", "1"},
		{"cron:suspend", "shop", shopJob}, {"cron:resume", "shop", shopJob}, {"logs", "shop", "-p", "cron"},
	} {
		if r := s.run("bob", "", args...); r.code != 1 || !strings.Contains(r.stderr, "not authorized") || strings.Contains(r.stdout, "exiting") {
			t.Errorf("bob %v: %s", args, r)
		}
	}
	// blog's run and job, named through shop.
	for _, args := range [][]string{{"cron:output", "shop", "2"}, {"cron:output", "shop", "#2"}, {"cron:run", "shop", blogJob}, {"cron:suspend", "shop", blogJob}} {
		if r := s.run("alice", "", args...); r.code != 1 || !strings.Contains(r.stderr, "not exist") && !strings.Contains(r.stderr, "no cron job") || strings.Contains(r.stdout, "sleeping") {
			t.Errorf("alice %v: %s", args, r)
		}
	}
	if r := s.must("alice", "cron:history", "shop", "--format", "json"); strings.Contains(r.stdout, blogJob) || !strings.Contains(r.stdout, shopJob) {
		t.Errorf("shop's history: %s", r.stdout)
	}
	if r := s.must("bob", "cron:list", "blog"); strings.Contains(r.stdout, "suspended") {
		t.Errorf("blog's job was suspended through shop: %s", r.stdout)
	}
	// Bad run numbers, counts and job ids.
	for _, bad := range []string{"0", "-1", "x", "1e3", "99999999999999999999", "../1"} {
		if r := s.run("alice", "", "cron:output", "shop", bad); r.code == 0 || strings.Contains(r.stdout, "exiting") {
			t.Errorf("cron:output %q: %s", bad, r)
		}
		if r := s.run("alice", "", "cron:history", "shop", "-n", bad); r.code != 2 || !strings.Contains(r.stderr, "1 to 200") {
			t.Errorf("cron:history -n %q: %s", bad, r)
		}
	}
	for _, bad := range []string{"ABCDEFGHIJ", "abcdefghi", "abcdefghijk", "abcdefghi1", "abcdefghi/", "abcdefghi\x1b"} {
		if r := s.run("alice", "", "cron:suspend", "shop", bad); r.code != 1 || !strings.Contains(r.stderr, "invalid cron job id") {
			t.Errorf("cron:suspend %q: %s", bad, r)
		}
	}
}

// TestStorageBadInput: bad names, sizes, specs and process types are
// refused with what to do, and leave nothing behind.
func TestStorageBadInput(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	s.deploy("shop", "web: serve\n")
	s.must("alice", "storage:ensure-directory", "shop-data")
	for _, args := range [][]string{
		{"storage:ensure-directory", "../etc"}, {"storage:ensure-directory", "Data"}, {"storage:ensure-directory", "a/b"},
		{"storage:ensure-directory", "a..b"}, {"storage:ensure-directory", "-x"}, {"storage:ensure-directory", strings.Repeat("a", 64)},
		{"storage:ensure-directory", "data\x1b[2J"}, {"storage:create", "."},
	} {
		if r := s.run("alice", "", args...); r.code == 0 || !strings.Contains(r.stderr, "storage name") && !strings.Contains(r.stderr, "usage") && !strings.Contains(r.stderr, "Usage") {
			t.Errorf("%q: %s", args, r)
		}
	}
	for _, size := range []string{"0", "-1", "10x", "1e3", "1.5g", "99999999999g", "g"} {
		if r := s.run("alice", "", "storage:ensure-directory", "sized", "--size", size); r.code == 0 {
			t.Errorf("--size %q: %s", size, r)
		}
		if r := s.run("alice", "", "storage:resize", "shop-data", size); r.code == 0 {
			t.Errorf("storage:resize %q: %s", size, r)
		}
	}
	for _, spec := range []string{"shop-data", "shop-data:", ":/data", "shop-data:data", "shop-data:/", "shop-data:/app", "shop-data:/workspace",
		"shop-data:/a/../../etc", "shop-data:/dev/shm", "shop-data:/etc/resolv.conf", "shop-data:/a b", "../shop-data:/data", "/var/lib/skiff:/data",
		"/var/lib/dokku/data/storage/../../../../etc:/data"} {
		if r := s.run("alice", "", "storage:mount", "shop", spec); r.code == 0 {
			t.Errorf("storage:mount %q: %s", spec, r)
		}
	}
	for _, types := range []string{"../web", "web,WEB!", ","} {
		if r := s.run("alice", "", "storage:mount", "shop", "shop-data:/data", "--process-type", types); r.code == 0 {
			t.Errorf("--process-type %q: %s", types, r)
		}
	}
	if r := s.run("alice", "", "storage:unmount", "shop", "shop-data:/data"); r.code != 1 || !strings.Contains(r.stderr, "no mount shop-data:/data") {
		t.Errorf("unmount of what is not mounted: %s", r)
	}
	if r := s.must("alice", "storage:list", "shop"); strings.Contains(r.stdout, "shop-data") {
		t.Errorf("a refused mount stayed: %s", r)
	}
	if r := s.must("alice", "releases", "shop"); strings.Contains(r.stdout, "v2") {
		t.Errorf("a refused mount made a release: %s", r)
	}
	if r := s.must("root", "storage:report", "--format", "json"); strings.Contains(r.stdout, "sized") || strings.Count(r.stdout, `"name"`) != 1 {
		t.Errorf("refused volumes were made: %s", r.stdout)
	}
}

// TestReleasesOutput: releases:output shows the newest release's output by
// default (after a rejected push, the failed release's), or that of vN.
func TestReleasesOutput(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	if r := s.run("alice", "", "releases:output", "shop"); r.code != 1 || !strings.Contains(r.stderr, "no releases yet") {
		t.Errorf("before a push: %s", r)
	}
	s.deployFiles("shop", map[string]string{"Procfile": "web: serve\nrelease: sleep 1ms\n"})
	if r := s.must("alice", "releases:output", "shop"); r.stdout != "sleeping\n" {
		t.Errorf("v1: %s", r)
	}
	if out, err := s.push("shop", map[string]string{"Procfile": "web: serve\nrelease: exit 3\n"}); err == nil || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("a failing release command: %v\n%s", err, out)
	}
	if r := s.must("alice", "releases:output", "shop"); r.stdout != "exiting 3\n" {
		t.Errorf("the newest release, v2, failed: %s", r)
	}
	if r := s.must("alice", "releases:output", "shop", "v1"); r.stdout != "sleeping\n" {
		t.Errorf("v1: %s", r)
	}
	for _, bad := range []string{"v0", "v99", "x", "-1"} {
		if r := s.run("alice", "", "releases:output", "shop", bad); r.code == 0 {
			t.Errorf("releases:output %s: %s", bad, r)
		}
	}
	if r := s.run("bob", "", "releases:output", "shop"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("bob: %s", r)
	}
}
