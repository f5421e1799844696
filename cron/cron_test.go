package cron_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/cron"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
)

// clock is the scheduler's time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fixture is a daemon's worth of cron: the real store, the in-memory
// scheduler over a host that outlives daemons, and a clock.
type fixture struct {
	t     *testing.T
	db    *store.DB
	host  *skifftest.Host
	clock *clock
	app   *skiff.App
	cfg   cron.Config

	sched  *skifftest.Scheduler
	cron   *cron.Scheduler
	refuse error // when set, every Start of a run is refused with it
	wrap   func(cron.Runs) cron.Runs
	cancel context.CancelFunc
	done   chan error
}

var t0 = time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)

func newFixture(t *testing.T, jobs ...skiff.CronJob) *fixture {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	images := skifftest.NewImages()
	images.Add(&skifftest.Image{Digest: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}})
	f := &fixture{t: t, db: db, host: skifftest.NewHost(images, t.TempDir()), clock: &clock{t: t0}}
	ctx := context.Background()
	f.app = &skiff.App{Name: "shop"}
	if err := db.CreateApp(ctx, f.app); err != nil {
		t.Fatal(err)
	}
	f.deploy(nil, jobs...)
	f.cfg = cron.Config{Store: db, Now: f.clock.Now, Refresh: time.Hour, StopGrace: time.Second}
	t.Cleanup(f.stop)
	return f
}

// deploy makes and deploys a release with the jobs.
func (f *fixture) deploy(config map[string]string, jobs ...skiff.CronJob) *skiff.Release {
	ctx := context.Background()
	rel := &skiff.Release{AppID: f.app.ID, Image: "sha256:1", Config: config, ProcessTypes: map[string]string{"web": "serve"}, Cron: jobs}
	if err := f.db.CreateRelease(ctx, rel); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.DeployRelease(ctx, f.app.ID, rel.Version, nil); err != nil {
		f.t.Fatal(err)
	}
	return rel
}

// redeploy deploys while the daemon runs, and waits until cron has seen
// the new jobs.
func (f *fixture) redeploy(config map[string]string, jobs ...skiff.CronJob) {
	f.deploy(config, jobs...)
	f.cron.Refresh()
	f.waitSeen()
}

// start starts a daemon: a scheduler over the host, and cron over it.
func (f *fixture) start() {
	f.sched = f.host.Scheduler(skifftest.Config{Grace: time.Second})
	cfg := f.cfg
	cfg.Runs = &cron.SchedulerRuns{Scheduler: f.sched, Formation: f.db.Formation, Poll: 20 * time.Millisecond}
	if f.refuse != nil {
		cfg.Runs = refusingRuns{cfg.Runs, f.refuse}
	}
	if f.wrap != nil {
		cfg.Runs = f.wrap(cfg.Runs)
	}
	f.cron = cron.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- f.cron.Run(ctx) }()
	f.waitSeen()
}

func (f *fixture) waitSeen() {
	ctx := context.Background()
	// Wait until it has seen the current release's jobs (their schedules
	// start from the clock's time then).
	rel, err := f.db.CurrentRelease(ctx, f.app.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		states, _ := f.db.CronStates(ctx, f.app.ID)
		seen := 0
		for _, j := range rel.Cron {
			for _, st := range states {
				if st.JobID == j.ID {
					seen++
				}
			}
		}
		if seen == len(rel.Cron) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatal("cron never read the jobs")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop stops the daemon; what runs on the host goes on.
func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("cron.Run: %v", err)
	}
	f.sched.Close()
	f.cancel = nil
}

// at moves the clock and wakes the scheduler.
func (f *fixture) at(t time.Time) {
	f.clock.Set(t)
	if f.cron != nil {
		f.cron.Refresh()
	}
}

func (f *fixture) runs(jobID string) []*skiff.CronRun {
	runs, err := f.db.CronRuns(context.Background(), f.app.ID, jobID, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return runs
}

// waitRuns waits until the job's runs satisfy ok, newest first.
func (f *fixture) waitRuns(jobID, what string, ok func([]*skiff.CronRun) bool) []*skiff.CronRun {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs := f.runs(jobID)
		if ok(runs) {
			return runs
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("never %s; runs: %s", what, describe(runs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func describe(runs []*skiff.CronRun) string {
	var b strings.Builder
	for _, r := range runs {
		b.WriteString("\n  #" + itoa(r.ID) + " " + string(r.Trigger) + " " + r.ScheduledAt.Format("15:04") + " " + string(r.Status) + " " + r.Detail)
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func finished(n int) func([]*skiff.CronRun) bool {
	return func(runs []*skiff.CronRun) bool {
		done := 0
		for _, r := range runs {
			if r.Status != skiff.CronRunning {
				done++
			}
		}
		return done >= n
	}
}

func TestScheduledRuns(t *testing.T) {
	job := skiff.NewCronJob("* * * * *", "exit 0")
	f := newFixture(t, job)
	f.start()
	f.at(t0.Add(35 * time.Second)) // 10:01:05
	runs := f.waitRuns(job.ID, "ran at 10:01", finished(1))
	r := runs[0]
	if r.Trigger != skiff.CronScheduled || !r.ScheduledAt.Equal(time.Date(2026, 3, 2, 10, 1, 0, 0, time.UTC)) || r.Status != skiff.CronSucceeded || r.Release != 1 {
		t.Fatalf("run %+v", r)
	}
	if out, _ := f.db.CronRunOutput(context.Background(), f.app.ID, r.ID); string(out) != "exiting 0\n" {
		t.Errorf("output %q", out)
	}
	// Its lines are in the app's log, as cron.<id>.
	var lines []string
	f.sched.Logs(context.Background(), skiff.LogQuery{AppID: f.app.ID, Process: "cron"}, func(l skiff.LogLine) error {
		lines = append(lines, l.Process+": "+l.Text)
		return nil
	})
	if !strings.Contains(strings.Join(lines, "\n"), "cron."+itoa(r.ID)+": exiting 0") {
		t.Errorf("app log: %q", lines)
	}
	// Reaped, once its end is recorded: nothing of it is left with the
	// scheduler.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ins, _ := f.sched.Instances(context.Background(), f.app.ID)
		if len(ins) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("instances left: %+v", ins)
			break
		}
	}
	f.at(t0.Add(95 * time.Second)) // 10:02:05
	f.waitRuns(job.ID, "ran at 10:02", finished(2))
	// A failing command is recorded with its status.
	failing := skiff.NewCronJob("*/5 * * * *", "exit 3")
	f.redeploy(nil, failing)
	f.at(time.Date(2026, 3, 2, 10, 5, 1, 0, time.UTC))
	runs = f.waitRuns(failing.ID, "ran", finished(1))
	if runs[0].Status != skiff.CronFailed || runs[0].ExitCode != 3 || runs[0].Release != 2 {
		t.Fatalf("failed run %+v", runs[0])
	}
}

func TestRunsNeverOverlap(t *testing.T) {
	job := skiff.NewCronJob("* * * * *", "sleep 1s")
	f := newFixture(t, job)
	f.start()
	f.at(t0.Add(35 * time.Second))
	f.waitRuns(job.ID, "started", func(r []*skiff.CronRun) bool { return len(r) == 1 })
	f.at(t0.Add(95 * time.Second)) // 10:02:05, while the first still sleeps
	runs := f.waitRuns(job.ID, "skipped the second", func(r []*skiff.CronRun) bool { return len(r) == 2 })
	if runs[0].Status != skiff.CronSkipped || !strings.Contains(runs[0].Detail, "#"+itoa(runs[1].ID)+" was still running") {
		t.Fatalf("second run %+v", runs[0])
	}
	runs = f.waitRuns(job.ID, "finished the first", finished(2))
	if runs[1].Status != skiff.CronSucceeded {
		t.Fatalf("first run %+v", runs[1])
	}
	// cron:run refuses to overlap too.
	f.at(t0.Add(155 * time.Second)) // 10:03:05
	f.waitRuns(job.ID, "started the third", func(r []*skiff.CronRun) bool { return len(r) == 3 && r[0].Status == skiff.CronRunning })
	if _, err := f.cron.RunNow(context.Background(), f.app, job.ID, nil); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("cron:run while the job runs: %v", err)
	}
	f.waitRuns(job.ID, "finished the third", finished(3))
}

// TestRestartCatchesUpOnceAndNeverDoubles: a daemon down across scheduled
// times runs the job once when it is back (a catch-up); a second restart
// at the same time runs nothing; a run in progress across a restart is
// re-attached and recorded once; a run whose process is gone is recorded
// interrupted.
func TestRestartCatchesUpOnceAndNeverDoubles(t *testing.T) {
	job := skiff.NewCronJob("* * * * *", "exit 0")
	f := newFixture(t, job)
	f.start()
	f.at(t0.Add(35 * time.Second)) // 10:01:05
	f.waitRuns(job.ID, "ran at 10:01", finished(1))
	f.stop()
	f.clock.Set(time.Date(2026, 3, 2, 10, 5, 10, 0, time.UTC)) // 10:02 to 10:05 missed
	f.start()
	runs := f.waitRuns(job.ID, "caught up", finished(2))
	c := runs[0]
	if c.Trigger != skiff.CronCatchUp || !c.ScheduledAt.Equal(time.Date(2026, 3, 2, 10, 5, 0, 0, time.UTC)) || !strings.Contains(c.Detail, "4 missed") {
		t.Fatalf("catch-up run %+v", c)
	}
	f.stop()
	f.start() // same time: nothing is due again
	time.Sleep(200 * time.Millisecond)
	if runs := f.runs(job.ID); len(runs) != 2 {
		t.Fatalf("a second restart ran the job again: %s", describe(runs))
	}
	f.stop()

	slow := skiff.NewCronJob("* * * * *", "sleep 1s")
	f.deploy(nil, slow)
	f.clock.Set(time.Date(2026, 3, 2, 10, 5, 20, 0, time.UTC))
	f.start()
	f.at(time.Date(2026, 3, 2, 10, 6, 1, 0, time.UTC))
	f.waitRuns(slow.ID, "started", func(r []*skiff.CronRun) bool { return len(r) == 1 })
	f.stop() // the daemon goes away mid-run; the run goes on
	f.start()
	runs = f.waitRuns(slow.ID, "finished after the restart", finished(1))
	if len(runs) != 1 || runs[0].Status != skiff.CronSucceeded {
		t.Fatalf("the re-attached run: %s", describe(runs))
	}
	if out, _ := f.db.CronRunOutput(context.Background(), f.app.ID, runs[0].ID); string(out) != "sleeping\n" {
		t.Errorf("output of the re-attached run %q", out)
	}

	// A run that ends while the daemon is down is recorded when it comes
	// back, before the job is next due: that run is not taken for one
	// still going (and skipped).
	f.at(time.Date(2026, 3, 2, 10, 7, 1, 0, time.UTC))
	f.waitRuns(slow.ID, "started at 10:07", func(r []*skiff.CronRun) bool { return len(r) == 2 && r[0].Status == skiff.CronRunning })
	f.stop()
	time.Sleep(1500 * time.Millisecond) // it ends meanwhile
	f.clock.Set(time.Date(2026, 3, 2, 10, 8, 1, 0, time.UTC))
	f.start()
	runs = f.waitRuns(slow.ID, "finished at 10:08", finished(3))
	if runs[0].Status != skiff.CronSucceeded || runs[1].Status != skiff.CronSucceeded {
		t.Fatalf("after a run ended while the daemon was down: %s", describe(runs))
	}
	if out, _ := f.db.CronRunOutput(context.Background(), f.app.ID, runs[1].ID); string(out) != "sleeping\n" {
		t.Errorf("output of the run that ended unwatched %q", out)
	}

	// A run whose process is gone when the daemon comes back.
	f.at(time.Date(2026, 3, 2, 10, 9, 1, 0, time.UTC))
	f.waitRuns(slow.ID, "started again", func(r []*skiff.CronRun) bool { return len(r) == 4 && r[0].Status == skiff.CronRunning })
	f.stop()
	other := f.host.Scheduler(skifftest.Config{})
	ins, _ := other.Instances(context.Background(), f.app.ID)
	for _, in := range ins {
		other.Stop(context.Background(), in.ID, time.Second)
	}
	other.Close()
	f.start()
	runs = f.waitRuns(slow.ID, "recorded the lost run", finished(4))
	if runs[0].Status != skiff.CronInterrupted {
		t.Fatalf("lost run %+v", runs[0])
	}
}

func TestDeployGraceAndTimeout(t *testing.T) {
	job := skiff.NewCronJob("* * * * *", "sleep 30s")
	f := newFixture(t, job)
	f.cfg.DeployGrace = 300 * time.Millisecond
	f.start()
	f.at(t0.Add(35 * time.Second))
	f.waitRuns(job.ID, "started", func(r []*skiff.CronRun) bool { return len(r) == 1 })
	// A deploy lets the run go on, for the grace.
	f.redeploy(nil, job)
	time.Sleep(100 * time.Millisecond)
	if r := f.runs(job.ID)[0]; r.Status != skiff.CronRunning {
		t.Fatalf("the deploy ended the run at once: %+v", r)
	}
	runs := f.waitRuns(job.ID, "stopped after the grace", finished(1))
	if runs[0].Status != skiff.CronFailed || runs[0].Release != 1 || !strings.Contains(runs[0].Detail, "v2 was deployed") {
		t.Fatalf("run %+v", runs[0])
	}
	f.stop()

	f.cfg.Timeout = 300 * time.Millisecond
	f.start()
	f.at(t0.Add(95 * time.Second))
	runs = f.waitRuns(job.ID, "timed out", finished(2))
	if runs[0].Status != skiff.CronFailed || !strings.Contains(runs[0].Detail, "ran longer than 300ms") || runs[0].Release != 2 {
		t.Fatalf("run %+v", runs[0])
	}
}

func TestRunNowSuspendAndTimeZone(t *testing.T) {
	job := skiff.NewCronJob("0 9 * * *", "exit 3")
	f := newFixture(t, job)
	f.start()
	var out strings.Builder
	run, err := f.cron.RunNow(context.Background(), f.app, job.ID, &out)
	if err != nil || run.Trigger != skiff.CronManual || run.Status != skiff.CronFailed || run.ExitCode != 3 {
		t.Fatalf("cron:run: %+v %v", run, err)
	}
	if out.String() != "exiting 3\n" {
		t.Errorf("streamed %q", out.String())
	}
	if _, err := f.cron.RunNow(context.Background(), f.app, "nosuchjob1", nil); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("cron:run of an unknown job: %v", err)
	}
	jobs, err := f.cron.Jobs(context.Background(), f.app)
	if err != nil || len(jobs) != 1 || jobs[0].Zone != "UTC" || !jobs[0].Next.Equal(time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)) || jobs[0].Last.ID != run.ID {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	// TZ moves the schedule to the app's zone.
	f.redeploy(map[string]string{"TZ": "Asia/Tokyo"}, job)
	jobs, _ = f.cron.Jobs(context.Background(), f.app)
	if jobs[0].Zone != "Asia/Tokyo" || jobs[0].ZoneNote != "" || !jobs[0].Next.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("jobs in Tokyo %+v (next %v)", jobs, jobs[0].Next.UTC())
	}
	// A zone Go does not know: UTC, and cron:list says why.
	f.redeploy(map[string]string{"TZ": "Mars/Olympus_Mons"}, job)
	if jobs, _ = f.cron.Jobs(context.Background(), f.app); jobs[0].Zone != "UTC" || !strings.Contains(jobs[0].ZoneNote, "TZ=Mars/Olympus_Mons is not a time zone") {
		t.Fatalf("jobs on Mars %+v", jobs)
	}
	f.redeploy(map[string]string{"TZ": "Asia/Tokyo"}, job)
	// Suspended, it lets its time pass; resumed, it does not catch up.
	if err := f.cron.SetSuspended(context.Background(), f.app, job.ID, true); err != nil {
		t.Fatal(err)
	}
	f.at(time.Date(2026, 3, 3, 0, 0, 30, 0, time.UTC))
	time.Sleep(200 * time.Millisecond)
	if runs := f.runs(job.ID); len(runs) != 1 {
		t.Fatalf("a suspended job ran: %s", describe(runs))
	}
	if err := f.cron.SetSuspended(context.Background(), f.app, job.ID, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if runs := f.runs(job.ID); len(runs) != 1 {
		t.Fatalf("resuming caught up: %s", describe(runs))
	}
}

// refusingRuns are runs whose scheduler refuses to start any, as a
// cluster does where a run of the job is going already.
type refusingRuns struct {
	cron.Runs
	err error
}

func (r refusingRuns) Start(context.Context, *skiff.App, *skiff.Release, *skiff.CronRun) (string, error) {
	return "", r.err
}

// A run its scheduler does not start never ran: cron:run says why, with
// the scheduler's code, and the history has it as not started, not as a
// failure of the job; a scheduled one likewise.
func TestRunNotStarted(t *testing.T) {
	job := skiff.NewCronJob("* * * * *", "echo ran")
	f := newFixture(t, job)
	f.refuse = skiff.Errorf(skiff.ECONFLICT, "%s is running on cluster tb (Job by-hand); runs of a job never overlap", job.ID)
	f.start()
	var out strings.Builder
	run, err := f.cron.RunNow(context.Background(), f.app, job.ID, &out)
	if skiff.ErrorCode(err) != skiff.ECONFLICT || !strings.Contains(err.Error(), "was not started: "+job.ID+" is running on cluster tb (Job by-hand)") {
		t.Fatalf("cron:run refused by the scheduler: %v", err)
	}
	if run == nil || run.Status != skiff.CronNotStarted || out.Len() != 0 {
		t.Fatalf("the refused run: %+v, output %q", run, out.String())
	}
	f.at(t0.Add(30 * time.Second)) // the next minute: a scheduled run, refused too
	runs := f.waitRuns(job.ID, "the scheduled run recorded", func(runs []*skiff.CronRun) bool {
		return len(runs) == 2 && runs[0].Status != skiff.CronRunning
	})
	for _, r := range runs {
		if r.Status != skiff.CronNotStarted || !strings.Contains(r.Detail, "not started: "+job.ID+" is running on cluster tb") || r.FinishedAt.IsZero() {
			t.Errorf("a refused run recorded as %+v", r)
		}
	}
}

// dyingRuns are runs whose removal never happens, as when the daemon dies
// right after a run ended: Remove says what the store held when it was
// called, and leaves the process.
type dyingRuns struct {
	cron.Runs
	removing chan skiff.CronRunStatus
	db       *store.DB
	appID    string
}

func (r dyingRuns) Remove(ctx context.Context, appID, id string, _ time.Duration) error {
	runs, _ := r.db.CronRuns(ctx, r.appID, "", 1)
	st := skiff.CronRunStatus("")
	if len(runs) == 1 {
		st = runs[0].Status
	}
	r.removing <- st
	return nil
}

// A run's end is recorded before its process is removed, so a daemon that
// dies between the two leaves a true record (not a run taken for lost at
// the next start), and the next daemon removes the ended process.
func TestRunRecordedBeforeRemoved(t *testing.T) {
	job := skiff.NewCronJob("* * * * *", "exit 0")
	f := newFixture(t, job)
	removing := make(chan skiff.CronRunStatus, 1)
	f.wrap = func(r cron.Runs) cron.Runs { return dyingRuns{r, removing, f.db, f.app.ID} }
	f.start()
	f.at(t0.Add(31 * time.Second))
	select {
	case st := <-removing:
		if st != skiff.CronSucceeded {
			t.Fatalf("when the run's process was removed, the store had it %q, want %q", st, skiff.CronSucceeded)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run never ended")
	}
	f.stop()
	left := func() int {
		other := f.host.Scheduler(skifftest.Config{})
		defer other.Close()
		ins, err := other.Instances(context.Background(), f.app.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(ins)
	}
	if n := left(); n != 1 {
		t.Fatalf("%d instances after the daemon died before removing the run, want its 1", n)
	}
	f.wrap = nil
	f.start()
	deadline := time.Now().Add(10 * time.Second)
	for left() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the next daemon did not remove the ended run's process")
		}
		time.Sleep(10 * time.Millisecond)
	}
	runs := f.runs(job.ID)
	if len(runs) != 1 || runs[0].Status != skiff.CronSucceeded {
		t.Fatalf("the run after the restart: %s", describe(runs))
	}
}

// A cron:run made while the daemon recovers — after recovery read the
// runs still going, before its sweep lists the processes — is this
// daemon's run, not what an ended run left: the sweep leaves it to end.
func TestSweepSparesARunStartedDuringRecovery(t *testing.T) {
	job := skiff.NewCronJob("0 9 * * *", "sleep 700ms")
	f := newFixture(t, job)
	ran := make(chan error, 1)
	f.wrap = func(r cron.Runs) cron.Runs {
		return &firstListRuns{Runs: r, before: func() {
			go func() {
				_, err := f.cron.RunNow(context.Background(), f.app, job.ID, nil)
				ran <- err
			}()
			// Until its process is up: the sweep then sees it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				if left, _ := r.List(context.Background(), f.app.ID); len(left) == 1 {
					return
				}
				if time.Now().After(deadline) {
					t.Error("the cron:run's process never started")
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}}
	}
	f.start()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cron:run never ended")
	}
	runs := f.runs(job.ID)
	if len(runs) != 1 || runs[0].Status != skiff.CronSucceeded {
		t.Fatalf("the run started during recovery: %s", describe(runs))
	}
}

// firstListRuns calls before ahead of the first List (the sweep's).
type firstListRuns struct {
	cron.Runs
	once   sync.Once
	before func()
}

func (r *firstListRuns) List(ctx context.Context, appID string) (map[int64]string, error) {
	r.once.Do(r.before)
	return r.Runs.List(ctx, appID)
}
