package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type cronRun struct {
	ID          int64     `json:"id"`
	JobID       string    `json:"job_id"`
	Trigger     string    `json:"trigger"`
	ScheduledAt time.Time `json:"scheduled_at"`
	Status      string    `json:"status"`
	ExitCode    int       `json:"exit_code"`
	Detail      string    `json:"detail"`
}

func (d *daemon) cronRuns(t *testing.T, app string) []cronRun {
	t.Helper()
	r := d.local("", "cron:history", app, "-n", "200", "--format", "json")
	var runs []cronRun
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &runs) != nil {
		t.Fatalf("cron:history: %s", r)
	}
	return runs
}

// waitCron waits until the app's cron runs satisfy ok.
func (d *daemon) waitCron(t *testing.T, app, what string, within time.Duration, ok func([]cronRun) bool) []cronRun {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		runs := d.cronRuns(t, app)
		if ok(runs) {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %s within %s; runs: %+v", what, within, runs)
		}
		time.Sleep(time.Second)
	}
}

func runsOf(runs []cronRun, job string) []cronRun {
	var out []cronRun
	for _, r := range runs {
		if r.JobID == job {
			out = append(out, r)
		}
	}
	return out
}

// TestCronJobs: an app.json cron job every minute appends to a file on a
// volume; runs are listed, kept and logged; cron:run streams; a job never
// overlaps itself; kill -9 of the daemon mid-run and across scheduled
// times neither loses nor doubles a run (the running one is re-attached
// and recorded once, the missed minutes are caught up with one run);
// suspended jobs do not run; TZ sets the zone.
func TestCronJobs(t *testing.T) {
	requireFull(t)
	dir := sandboxDir(t)
	d := &daemon{t: t, dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer)}
	hr := hostResources(3)
	args := []string{"--resource-prefix", hr.prefix, "--network-pool", hr.pool, "--debootstrap-cache", debootstrapCache, "--acme-ca", "", "--domain", "skiff.test"}
	d.startFull(args...)
	admin := d.addUser("admin", true)
	if r := d.local("", "builder:create"); r.code != 0 {
		t.Fatal(r)
	}
	const app, vol = "lccron", "lccron-data"
	for _, cmd := range [][]string{{"apps:create", app}, {"storage:ensure-directory", vol}, {"storage:mount", app, vol + ":/app/storage"}} {
		if r := d.local("", cmd...); r.code != 0 {
			t.Fatalf("%v: %s", cmd, r)
		}
	}
	files := pyApp("1")
	files["app.json"] = `{"cron": [
		{"command": "echo tick $(date -u +%H:%M:%S) >> /app/storage/ticks; echo ticked", "schedule": "* * * * *"},
		{"command": "echo slow start; sleep 80; echo slow done", "schedule": "* * * * *"}]}`
	repo := newRepo(t, files)
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	var jobs []struct {
		ID, Schedule, Command string
		Next                  time.Time `json:"next_run"`
		Zone                  string    `json:"time_zone"`
	}
	if r := d.local("", "cron:list", app, "--format", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &jobs) != nil || len(jobs) != 2 {
		t.Fatalf("cron:list: %s", r)
	}
	tick, slow := jobs[0].ID, jobs[1].ID
	if jobs[0].Zone != "UTC" || jobs[0].Next.IsZero() || time.Until(jobs[0].Next) > time.Minute {
		t.Fatalf("jobs %+v", jobs)
	}
	if r := d.local("", "cron:list", app); !strings.Contains(r.stdout, tick) || !strings.Contains(r.stdout, "* * * * *") {
		t.Fatalf("cron:list: %s", r)
	}

	// The first scheduled runs.
	d.waitCron(t, app, "ran the tick job", 2*time.Minute, func(runs []cronRun) bool {
		for _, r := range runsOf(runs, tick) {
			if r.Status == "succeeded" && r.Trigger == "schedule" {
				return true
			}
		}
		return false
	})
	if logs := d.local("", "logs", app, "-p", "cron", "-n", "100").stdout; !strings.Contains(logs, "ticked") {
		t.Fatalf("logs -p cron:\n%s", logs)
	}
	// cron:run streams the output, now.
	if r := d.local("", "cron:run", app, tick); r.code != 0 || !strings.Contains(r.stdout, "ticked") || !strings.Contains(r.stderr, "succeeded") {
		t.Fatalf("cron:run: %s", r)
	}
	// The slow job overlaps its next minute: that run is skipped.
	d.waitCron(t, app, "skipped an overlapping run", 3*time.Minute, func(runs []cronRun) bool {
		for _, r := range runsOf(runs, slow) {
			if r.Status == "skipped" && strings.Contains(r.Detail, "was still running") {
				return true
			}
		}
		return false
	})
	if r := d.local("", "cron:run", app, slow); r.code == 0 || !strings.Contains(r.stderr, "never overlap") {
		t.Fatalf("cron:run of a running job: %s", r)
	}

	// kill -9 while the slow job runs, down across a minute boundary.
	var running cronRun
	for _, r := range runsOf(d.cronRuns(t, app), slow) {
		if r.Status == "running" {
			running = r
		}
	}
	if running.ID == 0 {
		t.Fatal("no slow run is running")
	}
	d.kill9()
	down := time.Now()
	// Down across two scheduled times: the first is missed, the second
	// just passed.
	time.Sleep(time.Until(down.Truncate(time.Minute).Add(2*time.Minute + 5*time.Second)))
	d.startFull(args...)
	runs := d.waitCron(t, app, "finished the re-attached run", 3*time.Minute, func(runs []cronRun) bool {
		for _, r := range runs {
			if r.ID == running.ID {
				return r.Status != "running"
			}
		}
		return false
	})
	for _, r := range runs {
		if r.ID == running.ID && (r.Status != "succeeded" || r.ExitCode != 0) {
			t.Fatalf("the run across the restart: %+v", r)
		}
	}
	// (What it printed while no daemon ran, just before it ended, is not
	// kept: the pipe it wrote to went with it. Its status is.)
	if out := d.local("", "cron:output", app, fmt.Sprint(running.ID)); !strings.Contains(out.stdout, "slow start") {
		t.Fatalf("cron:output of the re-attached run: %s", out)
	}
	// The tick job caught up once for the minutes the daemon missed.
	runs = d.waitCron(t, app, "caught up", time.Minute, func(runs []cronRun) bool {
		for _, r := range runsOf(runs, tick) {
			if r.Trigger == "catch-up" && r.Status == "succeeded" {
				return true
			}
		}
		return false
	})
	// Never twice for one scheduled time, of either job.
	seen := map[string]bool{}
	succeeded, interrupted := 0, 0
	for _, r := range runs {
		if r.Trigger != "manual" {
			k := r.JobID + r.ScheduledAt.String()
			if seen[k] {
				t.Errorf("two runs of %s for %s: %+v", r.JobID, r.ScheduledAt, runs)
			}
			seen[k] = true
		}
		if r.JobID == tick && r.Status == "succeeded" {
			succeeded++
		}
		if r.JobID == tick && r.Status == "interrupted" {
			interrupted++
		}
	}
	// Each tick run that succeeded appended one line, no more. A run the
	// kill -9 caught after its process ended and before its end was
	// recorded is recorded interrupted (its container, and its exit
	// status, gone at the restart), and may have written its line.
	ticks := d.local("", "run", app, "cat /app/storage/ticks")
	if n := strings.Count(ticks.stdout, "tick "); n < succeeded || n > succeeded+interrupted {
		t.Errorf("%d lines in the ticks file for %d succeeded runs and %d interrupted:\n%s\nruns: %+v", n, succeeded, interrupted, ticks.stdout, runs)
	}

	// Suspended, a job lets its minutes pass.
	if r := d.local("", "cron:suspend", app, tick); r.code != 0 {
		t.Fatal(r)
	}
	before := len(runsOf(d.cronRuns(t, app), tick))
	time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 10*time.Second)))
	if after := len(runsOf(d.cronRuns(t, app), tick)); after != before {
		t.Fatalf("a suspended job ran: %d runs, %d before", after, before)
	}
	if r := d.local("", "cron:list", app); !strings.Contains(r.stdout, "suspended") {
		t.Fatalf("cron:list of a suspended job: %s", r)
	}
	if r := d.local("", "cron:resume", app, tick); r.code != 0 {
		t.Fatal(r)
	}
	// TZ moves the schedules to the app's zone.
	if r := d.local("", "config:set", app, "TZ=Asia/Tokyo"); r.code != 0 {
		t.Fatal(r)
	}
	if r := d.local("", "cron:list", app, "--format", "json"); json.Unmarshal([]byte(r.stdout), &jobs) != nil || jobs[0].Zone != "Asia/Tokyo" {
		t.Fatalf("cron:list after TZ: %s", r)
	}
	if r := d.local("", "apps:destroy", app, "--force", "--volumes"); r.code != 0 || !strings.Contains(r.stderr, "Removed storage "+vol) {
		t.Fatalf("apps:destroy --volumes: %s", r)
	}
	d.teardown(hr.prefix, hr.pool)
}
