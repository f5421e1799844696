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
	in, err := r.Scheduler.Start(ctx, &spec)
	if err != nil {
		return "", err
	}
	return in.ID, nil
}

func (r *SchedulerRuns) instance(ctx context.Context, appID, id string) (*skiff.Instance, error) {
	ins, err := r.Scheduler.Instances(ctx, appID)
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		if in.ID == id {
			return in, nil
		}
	}
	return nil, nil
}

// Attach implements Runs: it follows the run's lines in the app's log while
// it runs, then copies the lines it has not seen yet.
func (r *SchedulerRuns) Attach(ctx context.Context, appID, id string, w io.Writer) (int, error) {
	poll := r.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	in, err := r.instance(ctx, appID, id)
	if err != nil {
		return -1, err
	}
	if in == nil {
		return -1, skiff.Errorf(skiff.ENOTFOUND, "the run's process is gone")
	}
	q := skiff.LogQuery{AppID: appID, Process: in.Spec.Name(), Since: in.CreatedAt.Add(-time.Second), Lines: 1 << 20}
	seen := 0
	write := func(l skiff.LogLine) error {
		if l.Source != "app" {
			return nil
		}
		seen++
		_, err := io.WriteString(w, l.Text+"\n")
		return err
	}
	follow, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		fq := q
		fq.Follow = true
		r.Scheduler.Logs(follow, fq, write)
	}()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if in.State == skiff.InstanceExited {
			break
		}
		select {
		case <-ctx.Done():
			stopFollow()
			<-followed
			return -1, ctx.Err()
		case <-t.C:
		}
		if in, err = r.instance(ctx, appID, id); err != nil || in == nil {
			stopFollow()
			<-followed
			if err == nil {
				err = skiff.Errorf(skiff.ENOTFOUND, "the run's process went away")
			}
			return -1, err
		}
	}
	// The last lines may still be on their way to the log.
	time.Sleep(poll / 2)
	stopFollow()
	<-followed
	n := 0
	r.Scheduler.Logs(ctx, q, func(l skiff.LogLine) error {
		if l.Source != "app" {
			return nil
		}
		if n++; n > seen {
			io.WriteString(w, l.Text+"\n")
		}
		return nil
	})
	return in.ExitCode, nil
}

// Lookup implements Runs.
func (r *SchedulerRuns) Lookup(ctx context.Context, appID string, runID int64) (string, error) {
	ins, err := r.Scheduler.Instances(ctx, appID)
	if err != nil {
		return "", err
	}
	for _, in := range ins {
		if in.Spec.OneOff && in.Spec.ProcessType == skiff.OneOffCron && in.Spec.Index == int(runID) {
			return in.ID, nil
		}
	}
	return "", nil
}

// Remove implements Runs.
func (r *SchedulerRuns) Remove(ctx context.Context, appID, id string, grace time.Duration) error {
	return r.Scheduler.Stop(ctx, id, grace)
}
