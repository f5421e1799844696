package deploy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
	"github.com/skiffhq/skiff/volume"
)

// phaseFixture is a pipeline over the real store and the in-memory
// scheduler, with no router: enough for what a release runs.
type phaseFixture struct {
	t      *testing.T
	db     *store.DB
	p      *Pipeline
	sched  *skifftest.Scheduler
	host   *skifftest.Host
	images *skifftest.Images
	app    *skiff.App
	ctx    context.Context
}

func newPhaseFixture(t *testing.T) *phaseFixture {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	images := skifftest.NewImages()
	host := skifftest.NewHost(images, t.TempDir())
	sched := host.Scheduler(skifftest.Config{Grace: time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	t.Cleanup(func() {
		ins, _ := sched.Instances(context.Background(), "")
		for _, in := range ins {
			sched.Stop(context.Background(), in.ID, time.Second)
		}
		sched.Close()
	})
	vols, err := volume.New(volume.Config{Dir: filepath.Join(t.TempDir(), "volumes"), Directories: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &phaseFixture{t: t, db: db, sched: sched, host: host, images: images,
		ctx: skiff.WithActor(context.Background(), &skiff.Actor{Name: "alice"})}
	f.p = New(Config{Store: db, Scheduler: sched, Volumes: vols, BaseDomain: "skiff.test", ReadyTimeout: 10 * time.Second, StopGrace: time.Second})
	f.app = &skiff.App{Name: "shop"}
	if err := db.CreateApp(f.ctx, f.app); err != nil {
		t.Fatal(err)
	}
	return f
}

// image adds an image with the process types.
func (f *phaseFixture) image(digest string, types map[string]string) {
	f.images.Add(&skifftest.Image{Digest: digest, ProcessTypes: types})
}

func (f *phaseFixture) release(rel *skiff.Release) (string, error) {
	rel.AppID = f.app.ID
	if rel.Description == "" {
		rel.Description = "Deploy"
	}
	var out strings.Builder
	err := f.p.release(f.ctx, f.app, rel, nil, &out)
	return out.String(), err
}

func (f *phaseFixture) current() int {
	cur, err := f.db.CurrentRelease(f.ctx, f.app.ID)
	if err != nil {
		return 0
	}
	return cur.Version
}

func (f *phaseFixture) logs(process string) string {
	var b strings.Builder
	f.sched.Logs(f.ctx, skiff.LogQuery{AppID: f.app.ID, Process: process, Lines: 1000}, func(l skiff.LogLine) error {
		b.WriteString(l.Process + ": " + l.Text + "\n")
		return nil
	})
	return b.String()
}

func TestReleasePhaseRunsBeforeInstances(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve", "release": "sleep 10ms"})
	out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve", "release": "sleep 10ms"},
		Scripts: skiff.DeployScripts{Predeploy: "exit 0", Postdeploy: "exit 0"}})
	if err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	// Dokku's order: predeploy, the release command, the instances, the
	// switch, postdeploy.
	order := []string{"Running predeploy script…", "exiting 0", "Running release command…", "sleeping", "Release command finished in",
		"Starting web.1 of v1", "Released v1", "Running postdeploy script…", "Application deployed"}
	at := 0
	for _, want := range order {
		i := strings.Index(out[at:], want)
		if i < 0 {
			t.Fatalf("push output lacks %q after position %d:\n%s", want, at, out)
		}
		at += i
	}
	if f.current() != 1 {
		t.Fatalf("current v%d", f.current())
	}
	kept, _ := f.db.ReleaseOutput(f.ctx, f.app.ID, 1)
	if s := string(kept); !strings.Contains(s, "exiting 0") || !strings.Contains(s, "sleeping") || strings.Count(s, "exiting 0") != 2 {
		t.Errorf("kept output %q: want the predeploy's, the release command's and the postdeploy's", s)
	}
	if logs := f.logs("release"); !strings.Contains(logs, "release.1: sleeping") {
		t.Errorf("the app log lacks the release command's output:\n%s", logs)
	}
	// release is never a process of the formation.
	ins, _ := f.sched.Instances(f.ctx, f.app.ID)
	for _, in := range ins {
		if in.Spec.ProcessType != "web" {
			t.Errorf("instance %s runs", in.Spec.Name())
		}
	}
	if err := f.p.Scale(f.ctx, f.app, map[string]int{"release": 1}, &strings.Builder{}); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "cannot be scaled") {
		t.Fatalf("ps:scale release=1: %v", err)
	}
	// A config change runs the release command again (Heroku's rule).
	var cfgOut strings.Builder
	if err := f.p.SetConfig(f.ctx, f.app, &skiff.ConfigChange{Set: map[string]string{"A": "1"}}, true, &cfgOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfgOut.String(), "Running release command…") || f.current() != 2 {
		t.Fatalf("config:set, v%d:\n%s", f.current(), cfgOut.String())
	}
	if cur, _ := f.db.CurrentRelease(f.ctx, f.app.ID); cur.Scripts.Predeploy != "exit 0" {
		t.Errorf("config:set lost the scripts: %+v", cur.Scripts)
	}
	// So does a rollback.
	var rbOut strings.Builder
	if err := f.p.Rollback(f.ctx, f.app, 1, &rbOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rbOut.String(), "Running release command…") || f.current() != 3 {
		t.Fatalf("rollback, v%d:\n%s", f.current(), rbOut.String())
	}
	// A restart runs nothing.
	var rsOut strings.Builder
	if err := f.p.Restart(f.ctx, f.app, "", &rsOut); err != nil || strings.Contains(rsOut.String(), "release command") {
		t.Fatalf("restart: %v\n%s", err, rsOut.String())
	}
}

func TestFailedReleasePhaseKeepsThePreviousRelease(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve"})
	if out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}}); err != nil {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	before, _ := f.sched.Instances(f.ctx, f.app.ID)
	f.image("sha256:2", map[string]string{"web": "serve", "release": "exit 3"})
	out, err := f.release(&skiff.Release{Image: "sha256:2", ProcessTypes: map[string]string{"web": "serve", "release": "exit 3"}})
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "Release v2 failed, the previous release keeps serving") ||
		!strings.Contains(err.Error(), "the release command exited with status 3; its last lines:\n       exiting 3") {
		t.Fatalf("release of a failing release command: %v\n%s", err, out)
	}
	if strings.Contains(out, "Starting web.1 of v2") {
		t.Fatalf("instances of v2 started:\n%s", out)
	}
	if f.current() != 1 {
		t.Fatalf("current is v%d", f.current())
	}
	rel, _ := f.db.FindRelease(f.ctx, f.app.ID, 2)
	if rel.Status != skiff.ReleaseFailed || !strings.Contains(rel.Error, "exited with status 3") {
		t.Fatalf("v2 %+v", rel)
	}
	if kept, _ := f.db.ReleaseOutput(f.ctx, f.app.ID, 2); string(kept) != "exiting 3\n" {
		t.Errorf("kept output %q", kept)
	}
	after, _ := f.sched.Instances(f.ctx, f.app.ID)
	if len(after) != len(before) || after[0].ID != before[0].ID {
		t.Fatalf("instances changed: %+v -> %+v", before, after)
	}

	// A release command that outlives the timeout fails the same way.
	if err := f.db.SetSettings(f.ctx, f.app.ID, "checks:set", &skiff.Settings{ReleaseTimeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	f.image("sha256:3", map[string]string{"web": "serve", "release": "sleep 1m"})
	start := time.Now()
	out, err = f.release(&skiff.Release{Image: "sha256:3", ProcessTypes: map[string]string{"web": "serve", "release": "sleep 1m"}})
	if err == nil || !strings.Contains(err.Error(), "did not finish within 300ms") || !strings.Contains(err.Error(), "sleeping") || time.Since(start) > 10*time.Second {
		t.Fatalf("a release command past its timeout: %v\n%s", err, out)
	}
	if f.current() != 1 {
		t.Fatalf("current is v%d", f.current())
	}

	// A failing postdeploy is reported; the release stays.
	f.image("sha256:4", map[string]string{"web": "serve"})
	out, err = f.release(&skiff.Release{Image: "sha256:4", ProcessTypes: map[string]string{"web": "serve"}, Scripts: skiff.DeployScripts{Postdeploy: "exit 5"}})
	if err != nil || !strings.Contains(out, " !     the postdeploy script exited with status 5") || !strings.Contains(out, "v4 stays deployed") {
		t.Fatalf("a failing postdeploy: %v\n%s", err, out)
	}
	if f.current() != 4 {
		t.Fatalf("current is v%d after a failed postdeploy", f.current())
	}
}

func TestFirstDeployScriptRunsOnce(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve"})
	rel := func() *skiff.Release {
		return &skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}, Scripts: skiff.DeployScripts{FirstDeploy: "sleep 1ms"}}
	}
	if out, err := f.release(rel()); err != nil || !strings.Contains(out, "Running first postdeploy script…") {
		t.Fatalf("first deploy: %v\n%s", err, out)
	}
	if out, err := f.release(rel()); err != nil || strings.Contains(out, "first postdeploy") {
		t.Fatalf("second deploy: %v\n%s", err, out)
	}
}

// TestMountsMakeReleases: storage:mount and storage:unmount make releases
// whose instances carry the mounts; a rollback brings back the mounts its
// release had; apps:destroy keeps the volume unless asked.
func TestMountsMakeReleases(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve", "worker": "serve", "release": "exit 0"})
	v, err := f.p.CreateVolume(f.ctx, "uploads", 0)
	if err != nil {
		t.Fatal(err)
	}
	f.host.AddVolume(v.ID)
	// Before the first deploy, a mount only records.
	if err := f.p.Mount(f.ctx, f.app, "uploads", "/app/storage", nil, true, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	mounts, _ := f.db.Mounts(f.ctx, f.app.ID)
	f.db.SetFormation(f.ctx, f.app.ID, skiff.Formation{"worker": {Quantity: 1}})
	if out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve", "worker": "serve", "release": "exit 0"}, Mounts: mounts}); err != nil {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	mounted := func(want int) {
		t.Helper()
		ins, _ := f.sched.Instances(f.ctx, f.app.ID)
		for _, in := range ins {
			if len(in.Spec.Mounts) != want || want == 1 && (in.Spec.Mounts[0].Volume != v.ID || in.Spec.Mounts[0].Path != "/app/storage") {
				t.Fatalf("%s of v%d mounts %+v; want %d", in.Spec.Name(), in.Spec.Release, in.Spec.Mounts, want)
			}
		}
	}
	mounted(1)
	var out strings.Builder
	if err := f.p.Unmount(f.ctx, f.app, "uploads", "/app/storage", true, &out); err != nil || !strings.Contains(out.String(), "Running release command…") || f.current() != 2 {
		t.Fatalf("unmount: %v v%d\n%s", err, f.current(), out.String())
	}
	mounted(0)
	if err := f.p.Rollback(f.ctx, f.app, 1, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	mounted(1)
	if ms, _ := f.db.Mounts(f.ctx, f.app.ID); len(ms) != 1 {
		t.Fatalf("mounts after the rollback %+v", ms)
	}
	// One process type only.
	if err := f.p.Mount(f.ctx, f.app, "uploads", "/data", []string{"worker"}, true, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	ins, _ := f.sched.Instances(f.ctx, f.app.ID)
	for _, in := range ins {
		if want := map[string]int{"web": 1, "worker": 2}[in.Spec.ProcessType]; len(in.Spec.Mounts) != want {
			t.Errorf("%s mounts %+v", in.Spec.Name(), in.Spec.Mounts)
		}
	}
	if err := f.p.Mount(f.ctx, f.app, "uploads", "/data", []string{"worker"}, true, &strings.Builder{}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("the same mount twice: %v", err)
	}
	if err := f.p.DestroyVolume(f.ctx, "uploads"); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("destroyed a mounted volume: %v", err)
	}
	var destroyOut strings.Builder
	if err := f.p.DestroyApp(f.ctx, f.app, false, &destroyOut); err != nil || !strings.Contains(destroyOut.String(), "Kept storage uploads") {
		t.Fatalf("destroy: %v %s", err, destroyOut.String())
	}
	if _, err := f.db.FindVolume(f.ctx, "uploads"); err != nil {
		t.Fatalf("the volume went with the app: %v", err)
	}
	if u, err := f.p.VolumeUsage(f.ctx, v); err != nil || u.UsedBytes < 0 {
		t.Fatalf("usage %+v %v", u, err)
	}
	// With --volumes a volume only this app mounted goes too.
	other := &skiff.App{Name: "other"}
	f.db.CreateApp(f.ctx, other)
	f.p.Mount(f.ctx, other, "uploads", "/x", nil, true, &strings.Builder{})
	if err := f.p.DestroyApp(f.ctx, other, true, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.FindVolume(f.ctx, "uploads"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("apps:destroy --volumes kept the volume: %v", err)
	}
}

// TestStorageBudget: volumes' sizes add up to at most the budget; growing
// one counts what it grows by.
func TestStorageBudget(t *testing.T) {
	f := newPhaseFixture(t)
	f.p.cfg.StorageBudget, f.p.cfg.VolumeSize = 3<<30, 1<<30
	if _, err := f.p.CreateVolume(f.ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if v, err := f.p.CreateVolume(f.ctx, "b", 2<<30); err != nil || v.SizeBytes != 2<<30 {
		t.Fatalf("b: %+v %v", v, err)
	}
	_, err := f.p.CreateVolume(f.ctx, "c", 0)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "storage budget is 3 GiB and 3 GiB of it is given") {
		t.Fatalf("past the budget: %v", err)
	}
	if _, err := f.db.FindVolume(f.ctx, "c"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("a refused volume was recorded: %v", err)
	}
	if err := f.p.ResizeVolume(f.ctx, "a", 2<<30); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("growing past the budget: %v", err)
	}
	if err := f.p.ResizeVolume(f.ctx, "a", 512<<20); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("shrinking: %v", err)
	}
	f.p.DestroyVolume(f.ctx, "b")
	if _, err := f.p.CreateVolume(f.ctx, "c", 0); err != nil {
		t.Fatalf("after b went: %v", err)
	}
}

// TestFailedReleasePhaseOfEveryRelease: the releases config:set, a
// rollback and storage:mount make run the release command too, and its
// failure (here: past the release timeout) rejects them the way it
// rejects a push: the previous release keeps its instances, and the
// config and mounts stay what they were.
func TestFailedReleasePhaseOfEveryRelease(t *testing.T) {
	f := newPhaseFixture(t)
	slow := map[string]string{"web": "serve", "release": "sleep 400ms"}
	f.image("sha256:1", slow)
	if out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: slow}); err != nil {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	f.image("sha256:2", map[string]string{"web": "serve"})
	if out, err := f.release(&skiff.Release{Image: "sha256:2", ProcessTypes: map[string]string{"web": "serve"}}); err != nil {
		t.Fatalf("v2: %v\n%s", err, out)
	}
	// v1's release command; and v2's, once it has one.
	f.image("sha256:3", slow)
	if out, err := f.release(&skiff.Release{Image: "sha256:3", ProcessTypes: slow}); err != nil {
		t.Fatalf("v3: %v\n%s", err, out)
	}
	if err := f.p.SetConfig(f.ctx, f.app, &skiff.ConfigChange{Set: map[string]string{"B": "2"}}, true, &strings.Builder{}); err != nil || f.current() != 4 {
		t.Fatalf("v4: %v", err)
	}
	v, err := f.p.CreateVolume(f.ctx, "uploads", 0)
	if err != nil {
		t.Fatal(err)
	}
	f.host.AddVolume(v.ID)
	if err := f.db.SetSettings(f.ctx, f.app.ID, "checks:set", &skiff.Settings{ReleaseTimeout: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before, _ := f.sched.Instances(f.ctx, f.app.ID)
	unchanged := func(what string, err error, out string) {
		t.Helper()
		if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "the previous release keeps serving") ||
			!strings.Contains(err.Error(), "the release command did not finish within 100ms") || !strings.Contains(out, "Running release command…") {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
		if f.current() != 4 {
			t.Fatalf("%s: current is v%d", what, f.current())
		}
		after, _ := f.sched.Instances(f.ctx, f.app.ID)
		if len(after) != len(before) || after[0].ID != before[0].ID {
			t.Fatalf("%s: instances changed: %+v -> %+v", what, before, after)
		}
		if cfg, _ := f.db.Config(f.ctx, f.app.ID); len(cfg) != 1 || cfg["B"] != "2" {
			t.Fatalf("%s: config %v", what, cfg)
		}
		if ms, _ := f.db.Mounts(f.ctx, f.app.ID); len(ms) != 0 {
			t.Fatalf("%s: mounts %+v", what, ms)
		}
	}
	var out strings.Builder
	err = f.p.SetConfig(f.ctx, f.app, &skiff.ConfigChange{Set: map[string]string{"A": "1"}}, true, &out)
	unchanged("config:set", err, out.String())
	out.Reset()
	err = f.p.SetConfig(f.ctx, f.app, &skiff.ConfigChange{Unset: []string{"B"}}, true, &out)
	unchanged("config:unset", err, out.String())
	out.Reset()
	err = f.p.Rollback(f.ctx, f.app, 1, &out)
	unchanged("rollback", err, out.String())
	out.Reset()
	err = f.p.Mount(f.ctx, f.app, "uploads", "/app/storage", nil, true, &out)
	unchanged("storage:mount", err, out.String())
	// A rollback to a release without a release command runs none.
	out.Reset()
	if err := f.p.Rollback(f.ctx, f.app, 2, &out); err != nil || strings.Contains(out.String(), "Running release command") || f.current() != 9 {
		t.Fatalf("rollback to v2: %v, v%d\n%s", err, f.current(), out.String())
	}
	if got := f.releaseStatuses(); got != "v1:deployed v2:deployed v3:deployed v4:deployed v5:failed v6:failed v7:failed v8:failed v9:deployed" {
		t.Fatalf("releases %s", got)
	}
}

func (f *phaseFixture) releaseStatuses() string {
	rels, err := f.db.ListReleases(f.ctx, f.app.ID, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	var s []string
	for i := len(rels) - 1; i >= 0; i-- {
		s = append(s, fmt.Sprintf("v%d:%s", rels[i].Version, rels[i].Status))
	}
	return strings.Join(s, " ")
}

// TestTaskOutputIsCleaned: what a release command prints reaches the
// pusher, the app's log and the failure message without terminal
// escapes; releases:output keeps the bytes (and prints them cleaned).
func TestTaskOutputIsCleaned(t *testing.T) {
	var pusher strings.Builder
	var logged []string
	w := &taskWriter{out: &pusher, log: func(l string) { logged = append(logged, l) }}
	w.Write([]byte("migrating \x1b]0;owned\x07\x1b[2Jdone\r\nbell\x07"))
	w.flush()
	for _, got := range append([]string{pusher.String(), w.lastLines()}, logged...) {
		if strings.ContainsAny(got, "\x1b\x07\r") || !strings.Contains(got, "migrating") && !strings.Contains(got, "bell") {
			t.Errorf("%q", got)
		}
	}
	if !strings.Contains(string(w.all), "\x1b]0;owned") {
		t.Errorf("the kept output lost its bytes: %q", w.all)
	}
}

// The push's last line is the app's URL, with the router's port when it is
// not 80 (a router on :8080 does not answer at http://shop.skiff.test).
func TestDeployedURLNamesTheRoutersPort(t *testing.T) {
	for port, want := range map[int]string{80: "http://shop.skiff.test\n", 8080: "http://shop.skiff.test:8080\n"} {
		f := newPhaseFixture(t)
		f.p.cfg.HTTPPort = port
		f.image("sha256:1", map[string]string{"web": "serve"})
		out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}})
		if err != nil {
			t.Fatalf("release: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Application deployed:\n       "+want) {
			t.Errorf("port %d: the push does not end with %q:\n%s", port, want, out)
		}
	}
}

// The release phase's platform lines are named as its output is,
// release.<version> (as on Heroku), not run.N like a one-off `run`:
// `logs -p release` shows when each task started and how it ended.
func TestReleasePhaseIsNamedInTheLog(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve", "release": "sleep 10ms"})
	out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve", "release": "sleep 10ms"}})
	if err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	logs := f.logs("release")
	for _, want := range []string{"release.1: Starting process with command `sleep 10ms`", "release.1: sleeping", "release.1: Process exited with status 0"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the release log lacks %q:\n%s", want, logs)
		}
	}
	if runs := f.logs("run"); runs != "" {
		t.Errorf("the release command is logged as a one-off run:\n%s", runs)
	}
}
