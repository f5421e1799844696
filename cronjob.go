package skiff

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"io"
	"strings"
	"time"
)

// CronJob is one scheduled command of a release, from app.json's "cron".
// Its ID is derived from the schedule and the command, so it stays the
// same across deploys that keep the entry (and its history with it).
type CronJob struct {
	ID       string `json:"id"`
	Schedule string `json:"schedule"` // as ParseSchedule normalizes it
	Command  string `json:"command"`
}

var cronIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewCronJob returns the job with its ID.
func NewCronJob(schedule, command string) CronJob {
	sum := sha256.Sum256([]byte(schedule + "\x00" + command))
	return CronJob{ID: cronIDEncoding.EncodeToString(sum[:])[:10], Schedule: schedule, Command: command}
}

// ValidCronID reports whether id has the form NewCronJob gives.
func ValidCronID(id string) bool {
	return len(id) == 10 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

// CronRunStatus is where a run of a cron job is.
type CronRunStatus string

const (
	CronRunning     CronRunStatus = "running"
	CronSucceeded   CronRunStatus = "succeeded"
	CronFailed      CronRunStatus = "failed"      // exited non-zero, or timed out
	CronSkipped     CronRunStatus = "skipped"     // the previous run was still going
	CronInterrupted CronRunStatus = "interrupted" // the daemon stopped while it ran
	// CronNotStarted is a run its scheduler did not start (a cluster that
	// refused it: a run of the job still going there, a quota), so it
	// never ran; Detail says why.
	CronNotStarted CronRunStatus = "not-started"
)

// CronTrigger says why a run happened.
type CronTrigger string

const (
	CronScheduled CronTrigger = "schedule"
	CronCatchUp   CronTrigger = "catch-up" // a scheduled time missed while the daemon was down
	CronManual    CronTrigger = "manual"   // cron:run
)

// CronRun is the record of one run (or skipped run) of a job.
type CronRun struct {
	AppID       string        `json:"-"`
	ID          int64         `json:"id"`
	JobID       string        `json:"job_id"`
	Command     string        `json:"command"`
	Release     int           `json:"release"`
	Trigger     CronTrigger   `json:"trigger"`
	ScheduledAt time.Time     `json:"scheduled_at,omitzero"` // the scheduled time; zero for cron:run
	StartedAt   time.Time     `json:"started_at"`
	FinishedAt  time.Time     `json:"finished_at,omitzero"`
	Status      CronRunStatus `json:"status"`
	ExitCode    int           `json:"exit_code"`
	Detail      string        `json:"detail,omitempty"` // why it was skipped or failed
}

// Duration is how long the run took, or has taken so far.
func (r *CronRun) Duration(now time.Time) time.Duration {
	if r.FinishedAt.IsZero() {
		return now.Sub(r.StartedAt)
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

// CronState is what the scheduler keeps per job across daemon restarts.
type CronState struct {
	AppID     string `json:"-"`
	JobID     string `json:"job_id"`
	Suspended bool   `json:"suspended"`
	// LastScheduled is the latest scheduled time that was dealt with (run,
	// skipped or caught up); the next run is the schedule's first time
	// after it. Zero for a job that never came due.
	LastScheduled time.Time `json:"last_scheduled,omitzero"`
}

// CronJobStatus is a job of an app's current release, as cron:list shows
// it.
type CronJobStatus struct {
	CronJob
	Suspended bool      `json:"suspended"`
	Next      time.Time `json:"next_run,omitzero"` // zero while suspended
	Last      *CronRun  `json:"last_run,omitempty"`
	Zone      string    `json:"time_zone"` // TZ's zone, or UTC
	// ZoneNote says why Zone is UTC when the app's TZ names a zone Go's
	// time zone database does not have; empty otherwise.
	ZoneNote string `json:"time_zone_note,omitempty"`
}

// CronScheduler runs apps' cron jobs (package cron); these are what the
// commands ask of it.
type CronScheduler interface {
	// Jobs lists the jobs of the app's current release.
	Jobs(ctx context.Context, app *App) ([]CronJobStatus, error)
	// RunNow runs a job at once, its output copied to out until it ends;
	// ECONFLICT while the job runs. A caller that goes away leaves the run
	// going (it is recorded all the same). A run that its scheduler does
	// not start is recorded as CronNotStarted and returned with an error
	// that says why (of the scheduler's code: ECONFLICT for a run of the
	// job still going where it runs).
	RunNow(ctx context.Context, app *App, jobID string, out io.Writer) (*CronRun, error)
	// SetSuspended suspends or resumes a job.
	SetSuspended(ctx context.Context, app *App, jobID string, suspended bool) error
}

// CronService stores the cron jobs' state and their run history.
type CronService interface {
	CronStates(ctx context.Context, appID string) ([]*CronState, error)
	// SeedCronState returns the job's state, creating it with
	// LastScheduled = since when the job has none: the first time the
	// scheduler sees a job, nothing before since is due.
	SeedCronState(ctx context.Context, appID, jobID string, since time.Time) (*CronState, error)
	// SetCronSuspended suspends or resumes a job; resuming moves its
	// LastScheduled to now, so nothing it missed is caught up.
	SetCronSuspended(ctx context.Context, appID, jobID string, suspended bool) error
	// ClaimCronRun records a run (or a skipped one) and, for a scheduled
	// or catch-up run, advances the job's LastScheduled to
	// run.ScheduledAt in the same transaction; it fails with ECONFLICT
	// when LastScheduled is already there or later, so that no scheduled
	// time runs twice. It sets ID and StartedAt.
	ClaimCronRun(ctx context.Context, run *CronRun) error
	// FinishCronRun records how the run ended, with the last bytes of its
	// output; only the newest runs of each job keep their output.
	FinishCronRun(ctx context.Context, run *CronRun, output []byte) error
	// CronRuns lists an app's runs, newest first; jobID "" for every job.
	CronRuns(ctx context.Context, appID, jobID string, limit int) ([]*CronRun, error)
	FindCronRun(ctx context.Context, appID string, id int64) (*CronRun, error)
	CronRunOutput(ctx context.Context, appID string, id int64) ([]byte, error)
	// RunningCronRuns lists the runs of every app still marked running
	// (after a daemon restart: those to re-attach to or mark interrupted).
	RunningCronRuns(ctx context.Context) ([]*CronRun, error)
}
