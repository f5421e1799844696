package store_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func TestVolumesAndMounts(t *testing.T) {
	db, _ := open(t)
	alice := addUser(t, db, "alice", false)
	ctx := as(alice)
	app := &skiff.App{Name: "web"}
	other := &skiff.App{Name: "other"}
	db.CreateApp(ctx, app)
	db.CreateApp(ctx, other)

	v := &skiff.Volume{Name: "uploads"}
	if err := db.CreateVolume(ctx, v); err != nil || v.ID == "" || v.Owner != "alice" {
		t.Fatalf("create: %+v %v", v, err)
	}
	if err := db.CreateVolume(ctx, &skiff.Volume{Name: "uploads"}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("a second volume of the same name: %v", err)
	}
	if err := db.CreateVolume(ctx, &skiff.Volume{Name: "../x"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("a bad name: %v", err)
	}
	if _, err := db.FindVolume(ctx, "nope"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("find missing: %v", err)
	}
	m := skiff.AppMount{Volume: "uploads", VolumeID: v.ID, Path: "/app/storage"}
	if err := db.SetMounts(ctx, app.ID, []skiff.AppMount{m}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMounts(ctx, app.ID, []skiff.AppMount{m, {Volume: "uploads", VolumeID: v.ID, Path: "/app/storage"}}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("two mounts at one path: %v", err)
	}
	if err := db.SetMounts(ctx, other.ID, []skiff.AppMount{{Volume: "gone", VolumeID: "vol-0", Path: "/x"}}); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("a mount of a volume that does not exist: %v", err)
	}
	got, _ := db.Mounts(ctx, app.ID)
	if len(got) != 1 || got[0].VolumeID != m.VolumeID || got[0].Path != m.Path || got[0].Volume != "uploads" {
		t.Fatalf("mounts %+v", got)
	}
	if got, _ := db.Mounts(ctx, other.ID); len(got) != 0 {
		t.Fatalf("the other app has mounts %+v", got)
	}
	if fv, _ := db.FindVolume(ctx, "uploads"); len(fv.Apps) != 1 || fv.Apps[0] != "web" {
		t.Fatalf("volume's apps %+v", fv)
	}
	if err := db.DeleteVolume(ctx, "uploads"); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("deleted a mounted volume: %v", err)
	}

	// A release carries the mounts; deploying an older one brings its mounts back.
	r1 := &skiff.Release{AppID: app.ID, Image: "sha256:1", ProcessTypes: map[string]string{"web": "x"}, Mounts: []skiff.AppMount{m}}
	db.CreateRelease(ctx, r1)
	db.DeployRelease(ctx, app.ID, r1.Version, nil)
	r2 := &skiff.Release{AppID: app.ID, Image: "sha256:1", ProcessTypes: map[string]string{"web": "x"}}
	db.CreateRelease(ctx, r2)
	db.DeployRelease(ctx, app.ID, r2.Version, nil)
	if got, _ := db.Mounts(ctx, app.ID); len(got) != 0 {
		t.Fatalf("mounts after a release without them: %+v", got)
	}
	r3 := &skiff.Release{AppID: app.ID, Image: "sha256:1", ProcessTypes: map[string]string{"web": "x"}, Mounts: r1.Mounts}
	db.CreateRelease(ctx, r3)
	db.DeployRelease(ctx, app.ID, r3.Version, nil)
	if got, _ := db.Mounts(ctx, app.ID); len(got) != 1 {
		t.Fatalf("mounts after the rollback: %+v", got)
	}
	if cur, _ := db.CurrentRelease(ctx, app.ID); len(cur.Mounts) != 1 || cur.Mounts[0].VolumeID != v.ID {
		t.Fatalf("release mounts %+v", cur.Mounts)
	}
	// Destroying the app drops its mounts, and keeps the volume.
	if err := db.DeleteApp(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if fv, err := db.FindVolume(ctx, "uploads"); err != nil || len(fv.Apps) != 0 {
		t.Fatalf("volume after its app was destroyed: %+v %v", fv, err)
	}
	if err := db.DeleteVolume(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	if vols, _ := db.ListVolumes(ctx); len(vols) != 0 {
		t.Fatalf("volumes %+v", vols)
	}
}

func TestReleaseScriptsCronAndOutput(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "alice", true))
	app := &skiff.App{Name: "web"}
	db.CreateApp(ctx, app)
	job := skiff.NewCronJob("*/5 * * * *", "node clean.js")
	r := &skiff.Release{AppID: app.ID, Image: "sha256:1", ProcessTypes: map[string]string{"web": "x", "release": "y"},
		Scripts: skiff.DeployScripts{Predeploy: "a", Postdeploy: "b"}, Cron: []skiff.CronJob{job}}
	if err := db.CreateRelease(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindRelease(ctx, app.ID, r.Version)
	if err != nil || got.Scripts != r.Scripts || len(got.Cron) != 1 || got.Cron[0] != job {
		t.Fatalf("release %+v %v", got, err)
	}
	big := bytes.Repeat([]byte("x"), 300<<10)
	big = append(big, "the end\n"...)
	if err := db.SetReleaseOutput(ctx, app.ID, r.Version, big); err != nil {
		t.Fatal(err)
	}
	out, err := db.ReleaseOutput(ctx, app.ID, r.Version)
	if err != nil || len(out) >= len(big) || !bytes.HasSuffix(out, []byte("the end\n")) {
		t.Fatalf("output of %d bytes, %v", len(out), err)
	}
	if _, err := db.ReleaseOutput(ctx, app.ID, 99); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("output of a missing release: %v", err)
	}
}

func TestCronRuns(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "alice", true))
	app := &skiff.App{Name: "web"}
	db.CreateApp(ctx, app)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	st, err := db.SeedCronState(ctx, app.ID, "job1", t0)
	if err != nil || !st.LastScheduled.Equal(t0) || st.Suspended {
		t.Fatalf("seed: %+v %v", st, err)
	}
	if st, _ := db.SeedCronState(ctx, app.ID, "job1", t0.Add(time.Hour)); !st.LastScheduled.Equal(t0) {
		t.Fatalf("a second seed moved the state: %+v", st)
	}
	run := &skiff.CronRun{AppID: app.ID, JobID: "job1", Command: "x", Release: 1, Trigger: skiff.CronScheduled, ScheduledAt: t0.Add(5 * time.Minute), Status: skiff.CronRunning}
	if err := db.ClaimCronRun(ctx, run); err != nil || run.ID == 0 {
		t.Fatal(err)
	}
	// The same scheduled time, or an earlier one, cannot be claimed again.
	for _, at := range []time.Time{t0.Add(5 * time.Minute), t0.Add(4 * time.Minute)} {
		again := &skiff.CronRun{AppID: app.ID, JobID: "job1", Command: "x", Trigger: skiff.CronCatchUp, ScheduledAt: at, Status: skiff.CronRunning}
		if err := db.ClaimCronRun(ctx, again); skiff.ErrorCode(err) != skiff.ECONFLICT {
			t.Fatalf("claimed %v twice: %v", at, err)
		}
	}
	// A manual run does not touch the schedule.
	manual := &skiff.CronRun{AppID: app.ID, JobID: "job1", Command: "x", Trigger: skiff.CronManual, Status: skiff.CronRunning}
	if err := db.ClaimCronRun(ctx, manual); err != nil {
		t.Fatal(err)
	}
	if running, _ := db.RunningCronRuns(ctx); len(running) != 2 {
		t.Fatalf("running %+v", running)
	}
	run.Status, run.ExitCode = skiff.CronFailed, 3
	if err := db.FinishCronRun(ctx, run, []byte("boom\n")); err != nil {
		t.Fatal(err)
	}
	if out, _ := db.CronRunOutput(ctx, app.ID, run.ID); string(out) != "boom\n" {
		t.Fatalf("output %q", out)
	}
	got, err := db.FindCronRun(ctx, app.ID, run.ID)
	if err != nil || got.Status != skiff.CronFailed || got.ExitCode != 3 || got.FinishedAt.IsZero() || !got.ScheduledAt.Equal(run.ScheduledAt) {
		t.Fatalf("run %+v %v", got, err)
	}
	states, _ := db.CronStates(ctx, app.ID)
	if len(states) != 1 || !states[0].LastScheduled.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("states %+v", states)
	}
	if err := db.SetCronSuspended(ctx, app.ID, "job1", true); err != nil {
		t.Fatal(err)
	}
	if states, _ := db.CronStates(ctx, app.ID); !states[0].Suspended || !states[0].LastScheduled.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("suspended: %+v", states[0])
	}
	if err := db.SetCronSuspended(ctx, app.ID, "job1", false); err != nil {
		t.Fatal(err)
	}
	if states, _ := db.CronStates(ctx, app.ID); states[0].Suspended || !states[0].LastScheduled.After(time.Now().Add(-time.Minute)) {
		t.Fatalf("resuming did not move the schedule to now: %+v", states[0])
	}
	// History is capped per job; only the newest runs keep their output.
	for i := range 230 {
		r := &skiff.CronRun{AppID: app.ID, JobID: "job2", Command: "y", Trigger: skiff.CronManual, Status: skiff.CronRunning}
		db.ClaimCronRun(ctx, r)
		r.Status = skiff.CronSucceeded
		db.FinishCronRun(ctx, r, []byte{byte('a' + i%26)})
	}
	runs, _ := db.CronRuns(ctx, app.ID, "job2", 1000)
	if len(runs) != 200 {
		t.Fatalf("%d runs kept", len(runs))
	}
	withOutput := 0
	for _, r := range runs {
		if out, _ := db.CronRunOutput(ctx, app.ID, r.ID); len(out) > 0 {
			withOutput++
		}
	}
	if withOutput != 20 {
		t.Fatalf("%d runs kept their output", withOutput)
	}
	if runs, _ := db.CronRuns(ctx, app.ID, "job1", 10); len(runs) != 2 {
		t.Fatalf("job1 lost runs to job2's cap: %d", len(runs))
	}
	// A run's kept output is its last 64 KiB.
	big := &skiff.CronRun{AppID: app.ID, JobID: "job3", Command: "z", Trigger: skiff.CronManual, Status: skiff.CronRunning}
	db.ClaimCronRun(ctx, big)
	big.Status = skiff.CronSucceeded
	loud := append(bytes.Repeat([]byte("early\n"), 20<<10), "the end\n"...)
	if err := db.FinishCronRun(ctx, big, loud); err != nil {
		t.Fatal(err)
	}
	if out, _ := db.CronRunOutput(ctx, app.ID, big.ID); len(out) != 64<<10 || !bytes.HasSuffix(out, []byte("early\nthe end\n")) {
		t.Fatalf("kept %d bytes, ending %q", len(out), out[max(len(out)-20, 0):])
	}
}
