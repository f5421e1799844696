package admin

import (
	"fmt"
	"strconv"
	"time"

	"github.com/skiffhq/skiff"
)

// Cron: the jobs of an app.json's "cron" (Dokku's format), run by the
// server's cron scheduler as one-offs of the current release.

func (c *call) needCron() error {
	if c.services().Cron == nil || c.services().CronRuns == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no cron jobs")
	}
	return nil
}

func cronList(c *call) error {
	if err := c.needCron(); err != nil {
		return err
	}
	jobs, err := c.services().Cron.Jobs(c.ctx, c.app)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(jobs)
	}
	if len(jobs) == 0 {
		fmt.Fprintf(c.stderr(), "%s has no cron jobs; add them to app.json: \"cron\": [{\"command\": \"…\", \"schedule\": \"*/5 * * * *\"}]\n", c.app.Name)
		return nil
	}
	if jobs[0].ZoneNote != "" {
		fmt.Fprintf(c.stderr(), " !     %s\n", jobs[0].ZoneNote)
	}
	c.section(fmt.Sprintf("%s cron jobs (%s)", c.app.Name, jobs[0].Zone))
	rows := make([][]string, len(jobs))
	for i, j := range jobs {
		next := formatIn(j.Next, j.Zone)
		if j.Suspended {
			next = "suspended"
		}
		last := "-"
		if j.Last != nil {
			last = fmt.Sprintf("%s %s (%s)", runStatus(j.Last), formatIn(j.Last.StartedAt, j.Zone), durationText(j.Last))
		}
		rows[i] = []string{j.ID, j.Schedule, oneLineText(j.Command), next, last}
	}
	c.table([]string{"ID", "SCHEDULE", "COMMAND", "NEXT RUN", "LAST RUN"}, rows)
	return nil
}

func formatIn(t time.Time, zone string) string {
	if t.IsZero() {
		return "-"
	}
	if loc, err := time.LoadLocation(zone); err == nil {
		t = t.In(loc)
	}
	return t.Format("2006-01-02 15:04 MST")
}

func runStatus(r *skiff.CronRun) string {
	switch r.Status {
	case skiff.CronFailed:
		if r.ExitCode > 0 {
			return fmt.Sprintf("failed (status %d)", r.ExitCode)
		}
	case skiff.CronNotStarted:
		return "not started"
	}
	return string(r.Status)
}

func durationText(r *skiff.CronRun) string {
	if r.Status == skiff.CronSkipped || r.Status == skiff.CronNotStarted {
		return "not run"
	}
	d := r.Duration(time.Now())
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func oneLineText(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func cronJobArg(c *call) (string, error) {
	id := c.args[0]
	if !skiff.ValidCronID(id) {
		return "", skiff.Errorf(skiff.EINVALID, "invalid cron job id %s; cron:list %s shows the ids", quoteArg(id), c.app.Name)
	}
	return id, nil
}

func cronRun(c *call) error {
	if err := c.needCron(); err != nil {
		return err
	}
	id, err := cronJobArg(c)
	if err != nil {
		return err
	}
	c.progress("Running cron job %s of %s now", id, c.app.Name)
	run, err := c.services().Cron.RunNow(c.ctx, c.app, id, &sanitizer{w: c.stdout()})
	if err != nil {
		return err
	}
	if c.ctx.Err() != nil {
		return nil // hung up; the run goes on, recorded as usual
	}
	if run.Status == skiff.CronSucceeded {
		c.progress("Run #%d succeeded in %s", run.ID, durationText(run))
		return nil
	}
	msg := fmt.Sprintf("run #%d %s", run.ID, runStatus(run))
	if run.Detail != "" {
		msg += ": " + run.Detail
	}
	if run.ExitCode > 0 {
		fmt.Fprintf(c.stderr(), " !     %s\n", msg)
		return &exitError{code: run.ExitCode}
	}
	return skiff.Errorf(skiff.EUNAVAILABLE, "%s", msg)
}

func cronHistory(c *call) error {
	if err := c.needCron(); err != nil {
		return err
	}
	jobID := ""
	if len(c.args) == 1 {
		var err error
		if jobID, err = cronJobArg(c); err != nil {
			return err
		}
	}
	n := 20
	if v := c.value("num"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 200 {
			return &usageError{cmd: c.cmd, msg: "-n takes a number from 1 to 200"}
		}
	}
	runs, err := c.services().CronRuns.CronRuns(c.ctx, c.app.ID, jobID, n)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(runs)
	}
	if len(runs) == 0 {
		fmt.Fprintf(c.stderr(), "No cron runs of %s yet.\n", c.app.Name)
		return nil
	}
	c.section(c.app.Name + " cron runs")
	rows := make([][]string, len(runs))
	for i, r := range runs {
		due := "-"
		if !r.ScheduledAt.IsZero() {
			due = r.ScheduledAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		rows[i] = []string{"#" + strconv.FormatInt(r.ID, 10), r.JobID, string(r.Trigger), due, formatTime(r.StartedAt),
			durationText(r), runStatus(r), fmt.Sprintf("v%d", r.Release), r.Detail}
	}
	c.table([]string{"RUN", "JOB", "TRIGGER", "DUE", "STARTED", "TOOK", "STATUS", "RELEASE", "DETAIL"}, rows)
	return nil
}

func cronOutput(c *call) error {
	if err := c.needCron(); err != nil {
		return err
	}
	id, err := strconv.ParseInt(trimHash(c.args[0]), 10, 64)
	if err != nil || id < 1 {
		return skiff.Errorf(skiff.EINVALID, "invalid run %s: use its number from cron:history, like 12", quoteArg(c.args[0]))
	}
	if _, err := c.services().CronRuns.FindCronRun(c.ctx, c.app.ID, id); err != nil {
		return err
	}
	out, err := c.services().CronRuns.CronRunOutput(c.ctx, c.app.ID, id)
	if err != nil {
		return err
	}
	if len(out) == 0 {
		fmt.Fprintf(c.stderr(), "Run #%d has no kept output (skiff keeps the output of each job's last 20 runs; `logs %s -p cron` has more).\n", id, c.app.Name)
		return nil
	}
	(&sanitizer{w: c.stdout()}).Write(out)
	return nil
}

func trimHash(s string) string {
	if len(s) > 0 && s[0] == '#' {
		return s[1:]
	}
	return s
}

func cronSuspend(suspend bool) func(*call) error {
	return func(c *call) error {
		if err := c.needCron(); err != nil {
			return err
		}
		id, err := cronJobArg(c)
		if err != nil {
			return err
		}
		if err := c.services().Cron.SetSuspended(c.ctx, c.app, id, suspend); err != nil {
			return err
		}
		if suspend {
			c.progress("Suspended cron job %s of %s: it does not run until cron:resume", id, c.app.Name)
		} else {
			c.progress("Resumed cron job %s of %s: it runs at its next time (what it missed is not caught up)", id, c.app.Name)
		}
		return nil
	}
}
