package cron

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/skiffhq/skiff"
)

var _ skiff.CronScheduler = (*Scheduler)(nil)

// Jobs lists the jobs of the app's current release.
func (s *Scheduler) Jobs(ctx context.Context, app *skiff.App) ([]skiff.CronJobStatus, error) {
	rel, err := s.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		return []skiff.CronJobStatus{}, nil
	} else if err != nil {
		return nil, err
	}
	states, err := s.cfg.Store.CronStates(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	loc := Location(rel)
	note := ""
	if tz := rel.Config["TZ"]; tz != "" && loc == time.UTC && tz != "UTC" {
		note = fmt.Sprintf("TZ=%s is not a time zone skiff knows (like Europe/Paris): the jobs run in UTC", tz)
	}
	now := s.cfg.Now()
	out := []skiff.CronJobStatus{}
	for _, job := range rel.Cron {
		js := skiff.CronJobStatus{CronJob: job, Zone: loc.String(), ZoneNote: note}
		last := now
		for _, st := range states {
			if st.JobID == job.ID {
				js.Suspended = st.Suspended
				if st.LastScheduled.After(last) {
					last = st.LastScheduled
				}
			}
		}
		if sch, err := skiff.ParseSchedule(job.Schedule); err == nil && !js.Suspended {
			js.Next = sch.Next(last, loc)
		}
		runs, err := s.cfg.Store.CronRuns(ctx, app.ID, job.ID, 1)
		if err != nil {
			return nil, err
		}
		if len(runs) > 0 {
			js.Last = runs[0]
		}
		out = append(out, js)
	}
	return out, nil
}

// job returns the job of the app's current release with the id.
func (s *Scheduler) job(ctx context.Context, app *skiff.App, jobID string) (*skiff.Release, skiff.CronJob, error) {
	rel, err := s.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		return nil, skiff.CronJob{}, skiff.Errorf(skiff.ENOTFOUND, "%s has not been deployed yet, so it has no cron jobs", app.Name)
	} else if err != nil {
		return nil, skiff.CronJob{}, err
	}
	i := slices.IndexFunc(rel.Cron, func(j skiff.CronJob) bool { return j.ID == jobID })
	if i < 0 {
		return nil, skiff.CronJob{}, skiff.Errorf(skiff.ENOTFOUND, "%s has no cron job %s; `cron:list %s` shows its jobs", app.Name, jobID, app.Name)
	}
	return rel, rel.Cron[i], nil
}

// RunNow runs a job at once (cron:run), copying its output to out (nil:
// nowhere) until it ends, and returns the run as it ended. When ctx ends first (the caller
// hung up) the run goes on, and is recorded like any other. A job that is
// running already is ECONFLICT: runs never overlap. A run the scheduler
// refuses to start (a cluster where a run of the job is going) is recorded
// as not started, and its error says why.
func (s *Scheduler) RunNow(ctx context.Context, app *skiff.App, jobID string, out io.Writer) (*skiff.CronRun, error) {
	if out == nil {
		out = io.Discard
	}
	rel, job, err := s.job(ctx, app, jobID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	prev := s.active[key(app.ID, job.ID)]
	s.mu.Unlock()
	if prev != nil {
		return nil, skiff.Errorf(skiff.ECONFLICT, "%s is running (run #%d, started %s); runs of a job never overlap: wait for it, or see cron:history",
			job.ID, prev.run.ID, prev.run.StartedAt.UTC().Format(time.RFC3339))
	}
	run := &skiff.CronRun{AppID: app.ID, JobID: job.ID, Command: job.Command, Release: rel.Version, Trigger: skiff.CronManual, StartedAt: s.cfg.Now(), Status: skiff.CronRunning}
	if err := s.cfg.Store.ClaimCronRun(ctx, run); err != nil {
		return nil, err
	}
	a := s.start(context.WithoutCancel(ctx), app, rel, run)
	if a.id != "" {
		// Follow the output on our own: the watcher records the run even
		// if this caller goes away.
		_, _ = s.cfg.Runs.Attach(ctx, app.ID, a.id, &ignoreErrors{w: out}) // output only; the run's end is the watcher's
	}
	select {
	case <-a.done:
	case <-ctx.Done():
	}
	if a.notRun != nil {
		return run, skiff.Errorf(skiff.ErrorCode(a.notRun), "run #%d of cron job %s was not started: %s", run.ID, job.ID, skiff.ErrorMessage(a.notRun))
	}
	return run, nil
}

// SetSuspended suspends or resumes one of the app's jobs. A resumed job
// runs again at its next time; what it missed meanwhile is not caught up.
func (s *Scheduler) SetSuspended(ctx context.Context, app *skiff.App, jobID string, suspended bool) error {
	if _, _, err := s.job(ctx, app, jobID); err != nil {
		return err
	}
	if err := s.cfg.Store.SetCronSuspended(ctx, app.ID, jobID, suspended); err != nil {
		return err
	}
	s.Refresh()
	if s.cfg.Elsewhere != nil && s.cfg.Reapply != nil && s.cfg.Elsewhere(ctx, app.ID) {
		return s.cfg.Reapply(ctx, app)
	}
	return nil
}

// ignoreErrors writes to w until w fails once, then drops the rest: a
// caller that hung up does not stop the copy.
type ignoreErrors struct {
	w      io.Writer
	failed bool
}

func (e *ignoreErrors) Write(p []byte) (int, error) {
	if !e.failed {
		if _, err := e.w.Write(p); err != nil {
			e.failed = true
		}
	}
	return len(p), nil
}

// RecordElsewhere records a run of an app whose jobs another scheduler
// runs (Config.Elsewhere): it ran at its scheduled time there, and ended.
// Each scheduled time is recorded once; a second record of it (after a
// daemon restart) changes nothing.
func (s *Scheduler) RecordElsewhere(ctx context.Context, run *skiff.CronRun, output []byte) error {
	if run.Trigger == "" {
		run.Trigger = skiff.CronScheduled
		if !run.ScheduledAt.IsZero() && run.StartedAt.Sub(run.ScheduledAt) > time.Minute {
			run.Trigger = skiff.CronCatchUp
		}
	}
	if err := s.cfg.Store.ClaimCronRun(ctx, run); skiff.ErrorCode(err) == skiff.ECONFLICT {
		return nil
	} else if err != nil {
		return err
	}
	return s.cfg.Store.FinishCronRun(ctx, run, output)
}
