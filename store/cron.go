package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/skiffhq/skiff"
)

var _ skiff.CronService = (*DB)(nil)

// Cron history limits: every job keeps its newest cronRunsKept runs, and
// the output (its last maxCronOutput bytes) of the newest cronOutputsKept.
const (
	cronRunsKept    = 200
	cronOutputsKept = 20
	maxCronOutput   = 64 << 10
)

// CronStates returns the state of the app's jobs that have one.
func (db *DB) CronStates(ctx context.Context, appID string) ([]*skiff.CronState, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT job_id, suspended, last_scheduled FROM cron_state WHERE app_id = ? ORDER BY job_id`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var states []*skiff.CronState
	for rows.Next() {
		st := &skiff.CronState{AppID: appID}
		var last string
		if err := rows.Scan(&st.JobID, &st.Suspended, &last); err != nil {
			return nil, err
		}
		st.LastScheduled = parseTime(last)
		states = append(states, st)
	}
	return states, rows.Err()
}

// SeedCronState returns the job's state, creating it if needed.
func (db *DB) SeedCronState(ctx context.Context, appID, jobID string, since time.Time) (*skiff.CronState, error) {
	st := &skiff.CronState{AppID: appID, JobID: jobID}
	err := db.update(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO cron_state (app_id, job_id, last_scheduled) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			appID, jobID, formatTime(since)); err != nil {
			return err
		}
		var last string
		if err := tx.QueryRowContext(ctx, `SELECT suspended, last_scheduled FROM cron_state WHERE app_id = ? AND job_id = ?`, appID, jobID).Scan(&st.Suspended, &last); err != nil {
			return err
		}
		st.LastScheduled = parseTime(last)
		return nil
	})
	return st, err
}

// SetCronSuspended suspends or resumes a job; see skiff.CronService.
func (db *DB) SetCronSuspended(ctx context.Context, appID, jobID string, suspended bool) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		// Resuming moves the schedule to now: what the job missed while
		// suspended is not caught up.
		now := formatTime(tx.now)
		if _, err := tx.ExecContext(ctx, `INSERT INTO cron_state (app_id, job_id, suspended, last_scheduled) VALUES (?, ?, ?, ?)
			ON CONFLICT (app_id, job_id) DO UPDATE SET suspended = excluded.suspended,
				last_scheduled = CASE WHEN excluded.suspended THEN last_scheduled ELSE max(last_scheduled, excluded.last_scheduled) END`,
			appID, jobID, suspended, now); err != nil {
			return err
		}
		action := "cron:resume"
		if suspended {
			action = "cron:suspend"
		}
		return tx.event(appID, app, action, jobID)
	})
}

// ClaimCronRun records a run; see skiff.CronService.
func (db *DB) ClaimCronRun(ctx context.Context, run *skiff.CronRun) error {
	return db.update(ctx, func(tx *Tx) error {
		if _, err := tx.appName(run.AppID); err != nil {
			return err
		}
		if run.Trigger != skiff.CronManual {
			var last string
			err := tx.QueryRowContext(ctx, `SELECT last_scheduled FROM cron_state WHERE app_id = ? AND job_id = ?`, run.AppID, run.JobID).Scan(&last)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if last != "" && !run.ScheduledAt.After(parseTime(last)) {
				return skiff.Errorf(skiff.ECONFLICT, "the run of %s at %s was already dealt with", run.JobID, run.ScheduledAt.UTC().Format("2006-01-02 15:04"))
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO cron_state (app_id, job_id, last_scheduled) VALUES (?, ?, ?)
				ON CONFLICT (app_id, job_id) DO UPDATE SET last_scheduled = excluded.last_scheduled`, run.AppID, run.JobID, formatTime(run.ScheduledAt)); err != nil {
				return err
			}
		}
		if run.StartedAt.IsZero() {
			run.StartedAt = tx.now
		}
		sched, finished := "", ""
		if !run.ScheduledAt.IsZero() {
			sched = formatTime(run.ScheduledAt)
		}
		if !run.FinishedAt.IsZero() {
			finished = formatTime(run.FinishedAt)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO cron_runs (app_id, job_id, command, release_version, cause, scheduled_at, started_at, finished_at, status, exit_code, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, run.AppID, run.JobID, run.Command, run.Release, run.Trigger, sched,
			formatTime(run.StartedAt), finished, run.Status, run.ExitCode, run.Detail)
		if err != nil {
			return err
		}
		run.ID, err = res.LastInsertId()
		if err != nil {
			return err
		}
		return tx.pruneCronRuns(run.AppID, run.JobID)
	})
}

// FinishCronRun records how a run ended.
func (db *DB) FinishCronRun(ctx context.Context, run *skiff.CronRun, output []byte) error {
	if len(output) > maxCronOutput {
		output = output[len(output)-maxCronOutput:]
	}
	if output == nil {
		output = []byte{}
	}
	return db.update(ctx, func(tx *Tx) error {
		if run.FinishedAt.IsZero() {
			run.FinishedAt = tx.now
		}
		res, err := tx.ExecContext(ctx, `UPDATE cron_runs SET finished_at = ?, status = ?, exit_code = ?, detail = ?, output = ? WHERE app_id = ? AND id = ?`,
			formatTime(run.FinishedAt), run.Status, run.ExitCode, run.Detail, output, run.AppID, run.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return skiff.Errorf(skiff.ENOTFOUND, "cron run %d does not exist", run.ID)
		}
		return tx.pruneCronRuns(run.AppID, run.JobID)
	})
}

// pruneCronRuns keeps the job's newest runs, and the output of the newest
// of those.
func (tx *Tx) pruneCronRuns(appID, jobID string) error {
	if _, err := tx.ExecContext(tx.ctx, `DELETE FROM cron_runs WHERE app_id = ? AND job_id = ? AND id <= COALESCE(
		(SELECT id FROM cron_runs WHERE app_id = ? AND job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?), 0)`,
		appID, jobID, appID, jobID, cronRunsKept); err != nil {
		return err
	}
	_, err := tx.ExecContext(tx.ctx, `UPDATE cron_runs SET output = '' WHERE app_id = ? AND job_id = ? AND output != '' AND id <= COALESCE(
		(SELECT id FROM cron_runs WHERE app_id = ? AND job_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?), 0)`,
		appID, jobID, appID, jobID, cronOutputsKept)
	return err
}

const cronRunColumns = `app_id, id, job_id, command, release_version, cause, scheduled_at, started_at, finished_at, status, exit_code, detail`

func scanCronRun(row interface{ Scan(...any) error }) (*skiff.CronRun, error) {
	var r skiff.CronRun
	var sched, started, finished string
	if err := row.Scan(&r.AppID, &r.ID, &r.JobID, &r.Command, &r.Release, &r.Trigger, &sched, &started, &finished, &r.Status, &r.ExitCode, &r.Detail); err != nil {
		return nil, err
	}
	r.ScheduledAt, r.StartedAt, r.FinishedAt = parseTime(sched), parseTime(started), parseTime(finished)
	return &r, nil
}

func (db *DB) queryCronRuns(ctx context.Context, where string, args ...any) ([]*skiff.CronRun, error) {
	// where is constant SQL from the callers; the values are bound.
	return queryAll(ctx, db, scanCronRun, `SELECT `+cronRunColumns+` FROM cron_runs WHERE `+where, args...)
}

// CronRuns lists an app's runs, newest first.
func (db *DB) CronRuns(ctx context.Context, appID, jobID string, limit int) ([]*skiff.CronRun, error) {
	if limit <= 0 {
		limit = 50
	}
	if jobID == "" {
		return db.queryCronRuns(ctx, `app_id = ? ORDER BY id DESC LIMIT ?`, appID, limit)
	}
	return db.queryCronRuns(ctx, `app_id = ? AND job_id = ? ORDER BY id DESC LIMIT ?`, appID, jobID, limit)
}

// FindCronRun returns one run of an app.
func (db *DB) FindCronRun(ctx context.Context, appID string, id int64) (*skiff.CronRun, error) {
	runs, err := db.queryCronRuns(ctx, `app_id = ? AND id = ?`, appID, id)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "cron run %d does not exist", id)
	}
	return runs[0], nil
}

// CronRunOutput returns the kept output of a run.
func (db *DB) CronRunOutput(ctx context.Context, appID string, id int64) ([]byte, error) {
	var out []byte
	err := db.read.QueryRowContext(ctx, `SELECT output FROM cron_runs WHERE app_id = ? AND id = ?`, appID, id).Scan(&out)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "cron run %d does not exist", id)
	}
	return out, err
}

// RunningCronRuns lists the runs of every app still marked running.
func (db *DB) RunningCronRuns(ctx context.Context) ([]*skiff.CronRun, error) {
	return db.queryCronRuns(ctx, `status = ? ORDER BY id`, skiff.CronRunning)
}
