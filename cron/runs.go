package cron

import (
	"context"
	"io"
	"time"

	"github.com/skiffhq/skiff"
)

// SchedulerRuns implements Runs with a skiff.Scheduler: each run is a
// OneOff instance of process type "cron" whose index is the run's id, so
// its lines in the app's log are cron.<id> (`logs -p cron` shows them all).
type SchedulerRuns struct {
	Scheduler skiff.Scheduler
	// Formation gives the app's limits ("cron" in it limits cron runs).
	Formation func(ctx context.Context, appID string) (skiff.Formation, error)
	// Poll is how often a run's state is looked at; default 500 ms.
	Poll time.Duration
}

var _ Runs = (*SchedulerRuns)(nil)

// Start implements Runs.
func (r *SchedulerRuns) Start(ctx context.Context, app *skiff.App, rel *skiff.Release, run *skiff.CronRun) (string, error) {
	f, err := r.Formation(ctx, app.ID)
	if err != nil {
		return "", err
	}
	spec := skiff.OneOffSpec(app, rel, skiff.OneOffCron, f)
	spec.Index = int(run.ID)
	spec.Command = []string{run.Command}
	spec.OneOff = true
	spec.CronJob = run.JobID
	in, err := r.Scheduler.Start(ctx, &spec)
	if err != nil {
		return "", err
	}
	return in.ID, nil
}

// Attach implements Runs.
func (r *SchedulerRuns) Attach(ctx context.Context, appID, id string, w io.Writer) (int, error) {
	return skiff.FollowOneOff(ctx, r.Scheduler, appID, id, w, r.Poll)
}

// Lookup implements Runs.
func (r *SchedulerRuns) Lookup(ctx context.Context, appID string, runID int64) (string, error) {
	runs, err := r.List(ctx, appID)
	return runs[runID], err
}

// List implements Runs.
func (r *SchedulerRuns) List(ctx context.Context, appID string) (map[int64]string, error) {
	ins, err := r.Scheduler.Instances(ctx, appID)
	if err != nil {
		return nil, err
	}
	runs := map[int64]string{}
	for _, in := range ins {
		if in.Spec.OneOff && in.Spec.ProcessType == skiff.OneOffCron && in.Spec.AppID == appID {
			runs[int64(in.Spec.Index)] = in.ID
		}
	}
	return runs, nil
}

// Remove implements Runs.
func (r *SchedulerRuns) Remove(ctx context.Context, appID, id string, grace time.Duration) error {
	return r.Scheduler.Stop(ctx, id, grace)
}
