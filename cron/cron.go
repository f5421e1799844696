// Package cron runs the scheduled jobs of apps' current releases (app.json
// "cron", Dokku's format): each run a detached one-off of the release,
// recorded with its trigger, status, duration and the last bytes of its
// output.
//
// Its promises, each one a test:
//   - A job never overlaps itself: a run that comes due while the previous
//     one still runs is recorded as skipped, saying which run it waited on.
//   - A deploy does not kill a running job: it finishes on the release it
//     started with, up to Config.DeployGrace after a newer release is seen;
//     every run also ends at Config.Timeout.
//   - A daemon restart neither loses nor doubles a scheduled run. The store
//     advances a job's last scheduled time in the same transaction that
//     records the run, so each time is claimed once; runs outlive the
//     daemon (detached one-offs) and the next daemon re-attaches to them, or
//     records them interrupted when they are gone; the times missed while
//     no daemon ran are caught up with one run, recorded as a catch-up.
//   - Times are in the zone of the app's TZ config var, UTC without one.
package cron

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// Store is what the scheduler reads and records.
type Store interface {
	skiff.CronService
	ListApps(ctx context.Context, f skiff.AppFilter) ([]*skiff.App, error)
	CurrentRelease(ctx context.Context, appID string) (*skiff.Release, error)
}

// Runs starts and watches the detached one-offs that carry cron runs.
type Runs interface {
	// Start starts run.Command as a detached one-off of release rel of the
	// app, named cron.<run.ID> in its log, and returns its instance id.
	Start(ctx context.Context, app *skiff.App, rel *skiff.Release, run *skiff.CronRun) (string, error)
	// Attach copies the run's output to w until its process ends, and
	// returns the exit code (-1 when unknown); when ctx ends first it
	// returns ctx's error and the run goes on.
	Attach(ctx context.Context, appID, id string, w io.Writer) (int, error)
	// Lookup finds the instance of a run (after a daemon restart); "" when
	// it is gone.
	Lookup(ctx context.Context, appID string, runID int64) (string, error)
	// List lists the app's run instances, by run id.
	List(ctx context.Context, appID string) (map[int64]string, error)
	// Remove stops the run's process if it still runs (SIGTERM, then
	// SIGKILL after grace) and removes what is left of it.
	Remove(ctx context.Context, appID, id string, grace time.Duration) error
}

// Config configures a Scheduler.
type Config struct {
	Store Store
	Runs  Runs
	Log   *slog.Logger
	Now   func() time.Time // default time.Now
	// Timeout ends a run that takes longer; default 1 hour.
	Timeout time.Duration
	// DeployGrace is how long a run of a release that is no longer
	// current may go on; default 10 minutes.
	DeployGrace time.Duration
	// Refresh is how often every app's jobs are read again (Refresh asks
	// for it sooner); default 30 seconds.
	Refresh time.Duration
	// StopGrace is SIGTERM to SIGKILL for a run that is stopped; default 10 s.
	StopGrace time.Duration
	// Elsewhere, when set, reports whether an app's jobs run on a
	// scheduler of their own (CronJobs on a cluster): this one leaves
	// their schedule alone, and records their runs (RecordElsewhere).
	Elsewhere func(ctx context.Context, appID string) bool
	// Reapply, for such an app, gives its scheduler the jobs again (one
	// was suspended or resumed).
	Reapply func(ctx context.Context, app *skiff.App) error
}

// Scheduler runs cron jobs. Its methods are safe for concurrent use.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	quit chan struct{} // closed when Run returns
	wg   sync.WaitGroup

	mu     sync.Mutex
	apps   map[string]*appJobs // by app id
	active map[string]*active  // by key(app id, job id)
}

// appJobs is an app's current release as the scheduler sees it.
type appJobs struct {
	app       *skiff.App
	rel       *skiff.Release
	loc       *time.Location
	schedules map[string]*skiff.Schedule // by job id
}

// active is a run in progress. Its fields after run are guarded by the
// scheduler's mu.
type active struct {
	run      *skiff.CronRun
	id       string // the instance
	deadline time.Time
	why      string // what stopping it at the deadline will say
	timer    *time.Timer
	stopped  string // set when it was stopped: why
	notRun   error  // why its scheduler did not start it
	done     chan struct{}
}

// New returns a scheduler; Run starts it.
func New(cfg Config) *Scheduler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, time.Hour)
	def(&cfg.DeployGrace, 10*time.Minute)
	def(&cfg.Refresh, 30*time.Second)
	def(&cfg.StopGrace, 10*time.Second)
	return &Scheduler{cfg: cfg, log: cfg.Log, apps: map[string]*appJobs{}, active: map[string]*active{},
		wake: make(chan struct{}, 1), quit: make(chan struct{})}
}

func key(appID, jobID string) string { return appID + "/" + jobID }

// Run re-attaches to the runs a previous daemon left, then starts jobs as
// they come due, until ctx ends. Runs in progress go on after it returns:
// the next daemon re-attaches to them.
func (s *Scheduler) Run(ctx context.Context) error {
	defer func() {
		close(s.quit)
		s.mu.Lock()
		for _, a := range s.active {
			if a.timer != nil {
				a.timer.Stop()
			}
		}
		s.mu.Unlock()
		s.wg.Wait()
	}()
	if err := s.recover(ctx); err != nil {
		return err
	}
	var lastRead time.Time
	for {
		if s.cfg.Now().Sub(lastRead) >= s.cfg.Refresh || lastRead.IsZero() {
			if err := s.readApps(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("cron: read jobs", "err", err)
			}
			lastRead = s.cfg.Now()
		}
		next := s.tick(ctx, s.cfg.Now())
		wait := s.cfg.Refresh - s.cfg.Now().Sub(lastRead)
		if !next.IsZero() {
			wait = min(wait, next.Sub(s.cfg.Now()))
		}
		t := time.NewTimer(max(wait, 20*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
			t.Stop()
			lastRead = time.Time{}
		case <-t.C:
		}
	}
}

// Refresh makes the scheduler read the apps' jobs again now: after a
// deploy, a rollback, an app's destruction.
func (s *Scheduler) Refresh() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// recover deals with the runs a previous daemon recorded as running.
func (s *Scheduler) recover(ctx context.Context) error {
	runs, err := s.cfg.Store.RunningCronRuns(ctx)
	if err != nil {
		return err
	}
	var attached []*active
	defer func() {
		// Runs that ended while no daemon ran are recorded before any job
		// comes due again, so that none is taken for a run still going.
		deadline := time.After(5 * time.Second)
		for _, a := range attached {
			select {
			case <-a.done:
			case <-deadline:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for _, run := range runs {
		id, err := s.cfg.Runs.Lookup(ctx, run.AppID, run.ID)
		if err != nil {
			return err
		}
		if id == "" {
			run.Status, run.ExitCode = skiff.CronInterrupted, -1
			run.Detail = joinDetail(run.Detail, "interrupted: its process was gone after the daemon restarted")
			if err := s.cfg.Store.FinishCronRun(ctx, run, nil); err != nil {
				return err
			}
			continue
		}
		s.log.Info("cron: re-attaching to a run", "run", run.ID, "job", run.JobID)
		a := &active{run: run, id: id, deadline: run.StartedAt.Add(s.cfg.Timeout), done: make(chan struct{})}
		s.mu.Lock()
		s.active[key(run.AppID, run.JobID)] = a
		s.armLocked(a)
		s.mu.Unlock()
		s.watch(a)
		attached = append(attached, a)
	}
	s.sweep(ctx, runs)
	return nil
}

// sweep removes what is left of runs whose end is recorded: a run's end is
// recorded before its process is removed (so a daemon's death between the
// two never makes a run that ended look lost), and a death there leaves
// the exited process behind. running are the runs still going.
func (s *Scheduler) sweep(ctx context.Context, running []*skiff.CronRun) {
	going := map[string]bool{}
	for _, r := range running {
		going[r.AppID+"/"+strconv.FormatInt(r.ID, 10)] = true
	}
	apps, err := s.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		s.log.Warn("cron: list apps for leftover runs", "err", err)
		return
	}
	for _, app := range apps {
		if s.cfg.Elsewhere != nil && s.cfg.Elsewhere(ctx, app.ID) {
			continue // its runs are the cluster's Jobs
		}
		left, err := s.cfg.Runs.List(ctx, app.ID)
		if err != nil {
			s.log.Warn("cron: list an app's runs", "app", app.Name, "err", err)
			continue
		}
		for runID, id := range left {
			if going[app.ID+"/"+strconv.FormatInt(runID, 10)] || s.isActive(app.ID, runID) {
				continue // still going, or started since (cron:run while this daemon recovers)
			}
			s.log.Info("cron: removing what is left of an ended run", "app", app.Name, "run", runID)
			if err := s.cfg.Runs.Remove(ctx, app.ID, id, s.cfg.StopGrace); err != nil {
				s.log.Warn("cron: remove an ended run", "run", runID, "err", err)
			}
		}
	}
}

// readApps reads every app's current release and its jobs.
func (s *Scheduler) readApps(ctx context.Context) error {
	apps, err := s.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, app := range apps {
		seen[app.ID] = true
		rel, err := s.cfg.Store.CurrentRelease(ctx, app.ID)
		if skiff.ErrorCode(err) == skiff.ENOTFOUND {
			rel = nil
		} else if err != nil {
			return err
		}
		if s.cfg.Elsewhere != nil && s.cfg.Elsewhere(ctx, app.ID) {
			rel = nil // its own scheduler runs its jobs
		}
		s.setApp(app, rel)
	}
	s.mu.Lock()
	for id := range s.apps {
		if !seen[id] {
			delete(s.apps, id)
		}
	}
	s.mu.Unlock()
	return nil
}

// setApp takes an app's current release; runs of an older one get
// DeployGrace to finish.
func (s *Scheduler) setApp(app *skiff.App, rel *skiff.Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch old := s.apps[app.ID]; {
	case rel == nil || len(rel.Cron) == 0:
		delete(s.apps, app.ID)
	case old == nil || old.rel.Version != rel.Version || old.app.Name != app.Name:
		s.apps[app.ID] = s.jobsOf(app, rel)
	}
	if rel == nil {
		return
	}
	for _, a := range s.active {
		if a.run.AppID == app.ID && a.run.Release < rel.Version {
			if d := s.cfg.Now().Add(s.cfg.DeployGrace); d.Before(a.deadline) {
				a.deadline = d
				a.why = fmt.Sprintf("stopped: v%d was deployed, and the run of v%d went on %s past it", rel.Version, a.run.Release, s.cfg.DeployGrace)
				s.armLocked(a)
			}
		}
	}
}

func (s *Scheduler) jobsOf(app *skiff.App, rel *skiff.Release) *appJobs {
	aj := &appJobs{app: app, rel: rel, loc: Location(rel), schedules: map[string]*skiff.Schedule{}}
	for _, j := range rel.Cron {
		sch, err := skiff.ParseSchedule(j.Schedule)
		if err != nil {
			s.log.Error("cron: a stored schedule does not parse", "app", app.Name, "job", j.ID, "err", err)
			continue
		}
		aj.schedules[j.ID] = sch
	}
	return aj
}

// Location is the zone a release's jobs run in: its TZ config var's, UTC
// without one (or with one Go does not know).
func Location(rel *skiff.Release) *time.Location {
	if tz := rel.Config["TZ"]; tz != "" {
		if loc, err := time.LoadLocation(tz); err == nil {
			return loc
		}
	}
	return time.UTC
}

// tick starts the runs that are due and returns when the next one is.
func (s *Scheduler) tick(ctx context.Context, now time.Time) time.Time {
	s.mu.Lock()
	apps := make([]*appJobs, 0, len(s.apps))
	for _, aj := range s.apps {
		apps = append(apps, aj)
	}
	s.mu.Unlock()
	sort.Slice(apps, func(i, j int) bool { return apps[i].app.Name < apps[j].app.Name })
	var next time.Time
	for _, aj := range apps {
		for _, job := range aj.rel.Cron {
			sch := aj.schedules[job.ID]
			if sch == nil {
				continue
			}
			due, err := s.dueRun(ctx, aj, job, sch, now)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("cron: schedule", "app", aj.app.Name, "job", job.ID, "err", err)
				}
				continue
			}
			if !due.IsZero() && (next.IsZero() || due.Before(next)) {
				next = due
			}
		}
	}
	return next
}

// maxMissed bounds the missed times counted (a job every minute, a daemon
// down for years).
const maxMissed = 1 << 20

// dueRun starts the job's run if one is due, and returns its next time.
func (s *Scheduler) dueRun(ctx context.Context, aj *appJobs, job skiff.CronJob, sch *skiff.Schedule, now time.Time) (time.Time, error) {
	if s.cfg.Elsewhere != nil && s.cfg.Elsewhere(ctx, aj.app.ID) {
		s.Refresh() // it moved since the jobs were read: its scheduler runs them now
		return time.Time{}, nil
	}
	st, err := s.cfg.Store.SeedCronState(ctx, aj.app.ID, job.ID, now)
	if err != nil {
		return time.Time{}, err
	}
	if st.Suspended {
		return time.Time{}, nil // resuming moves its schedule to then
	}
	due := sch.Next(st.LastScheduled, aj.loc)
	if due.IsZero() || due.After(now) {
		return due, nil
	}
	// The latest time that is due; those before it were missed.
	latest, missed := due, 0
	for range maxMissed {
		n := sch.Next(latest, aj.loc)
		if n.IsZero() || n.After(now) {
			break
		}
		latest, missed = n, missed+1
	}
	next := sch.Next(latest, aj.loc)
	run := &skiff.CronRun{AppID: aj.app.ID, JobID: job.ID, Command: job.Command, Release: aj.rel.Version,
		Trigger: skiff.CronScheduled, ScheduledAt: latest, StartedAt: now, Status: skiff.CronRunning}
	if missed > 0 || now.Sub(latest) > time.Minute {
		run.Trigger = skiff.CronCatchUp
		run.Detail = fmt.Sprintf("caught up once for %d missed time(s), the first at %s", missed+1, due.UTC().Format("2006-01-02 15:04 MST"))
	}
	s.mu.Lock()
	prev := s.active[key(aj.app.ID, job.ID)]
	s.mu.Unlock()
	if prev != nil {
		run.Status, run.FinishedAt, run.ExitCode = skiff.CronSkipped, now, 0
		run.Detail = joinDetail(run.Detail, fmt.Sprintf("skipped: run #%d was still running", prev.run.ID))
	}
	if err := s.cfg.Store.ClaimCronRun(ctx, run); skiff.ErrorCode(err) == skiff.ECONFLICT {
		return next, nil // another claim won
	} else if err != nil {
		return time.Time{}, err
	}
	if prev == nil {
		s.start(ctx, aj.app, aj.rel, run)
	}
	return next, nil
}

// start launches a claimed run and watches it.
func (s *Scheduler) start(ctx context.Context, app *skiff.App, rel *skiff.Release, run *skiff.CronRun) *active {
	a := &active{run: run, deadline: run.StartedAt.Add(s.cfg.Timeout), done: make(chan struct{})}
	s.mu.Lock()
	s.active[key(run.AppID, run.JobID)] = a
	s.mu.Unlock()
	id, err := s.cfg.Runs.Start(ctx, app, rel, run)
	if err != nil {
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			s.log.Error("cron: start run", "app", app.Name, "job", run.JobID, "err", err)
		}
		// Never ran, so not a failure of the job: what the scheduler said.
		run.Status, run.ExitCode = skiff.CronNotStarted, -1
		run.Detail = joinDetail(run.Detail, "not started: "+skiff.ErrorMessage(err))
		a.notRun = err
		s.finish(a, nil)
		return a
	}
	s.mu.Lock()
	a.id = id
	s.armLocked(a)
	s.mu.Unlock()
	s.watch(a)
	return a
}

// watch follows a run to its end in the background, then records it.
func (s *Scheduler) watch(a *active) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		tail := &tailBuffer{max: 64 << 10}
		code, err := s.cfg.Runs.Attach(ctx, a.run.AppID, a.id, tail)
		if ctx.Err() != nil {
			return // the daemon stops; the run goes on, the next daemon re-attaches
		}
		s.mu.Lock()
		stopped := a.stopped
		s.mu.Unlock()
		a.run.ExitCode = code
		switch {
		case stopped != "":
			a.run.Status, a.run.Detail = skiff.CronFailed, joinDetail(a.run.Detail, stopped)
		case err != nil:
			a.run.Status, a.run.Detail = skiff.CronFailed, joinDetail(a.run.Detail, "lost track of it: "+skiff.ErrorMessage(err))
		case code == 0:
			a.run.Status = skiff.CronSucceeded
		default:
			a.run.Status = skiff.CronFailed
		}
		// Recorded first: a daemon that dies before the removal leaves an
		// ended process, which the next one sweeps, and a true record. And
		// forgotten before the removal: the job's next run need not wait
		// for it.
		s.finish(a, tail.Bytes())
		if err := s.cfg.Runs.Remove(context.Background(), a.run.AppID, a.id, s.cfg.StopGrace); err != nil {
			s.log.Warn("cron: remove a finished run", "run", a.run.ID, "err", err)
		}
	}()
}

// isActive reports whether this daemon runs the app's run runID (a run is
// active before its process starts).
func (s *Scheduler) isActive(appID string, runID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.active {
		if a.run.AppID == appID && a.run.ID == runID {
			return true
		}
	}
	return false
}

// finish records the run's end and forgets it.
func (s *Scheduler) finish(a *active, output []byte) {
	if err := s.cfg.Store.FinishCronRun(context.Background(), a.run, output); err != nil {
		s.log.Error("cron: record a run", "run", a.run.ID, "err", err)
	}
	s.mu.Lock()
	if a.timer != nil {
		a.timer.Stop()
	}
	if s.active[key(a.run.AppID, a.run.JobID)] == a {
		delete(s.active, key(a.run.AppID, a.run.JobID))
	}
	s.mu.Unlock()
	close(a.done)
}

// armLocked (re)sets the timer that stops a run at its deadline.
func (s *Scheduler) armLocked(a *active) {
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.why == "" {
		a.why = fmt.Sprintf("stopped: it ran longer than %s", s.cfg.Timeout)
	}
	a.timer = time.AfterFunc(max(a.deadline.Sub(s.cfg.Now()), 0), func() { s.expire(a) })
}

// expire stops a run that reached its deadline; its watcher records it.
func (s *Scheduler) expire(a *active) {
	select {
	case <-s.quit:
		return
	default:
	}
	s.mu.Lock()
	a.stopped = a.why
	id := a.id
	s.mu.Unlock()
	s.log.Info("cron: stopping a run", "run", a.run.ID, "why", a.why)
	if err := s.cfg.Runs.Remove(context.Background(), a.run.AppID, id, s.cfg.StopGrace); err != nil {
		s.log.Warn("cron: stop a run", "run", a.run.ID, "err", err)
	}
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.b...)
}
