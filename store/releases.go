package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/skiffhq/skiff"
)

var _ skiff.ReleaseService = (*DB)(nil)

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// CreateBuild records a build that starts now, numbered after the app's
// last one.
func (db *DB) CreateBuild(ctx context.Context, b *skiff.Build) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(b.AppID)
		if err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(max(id), 0) + 1 FROM builds WHERE app_id = ?`, b.AppID).Scan(&b.ID); err != nil {
			return err
		}
		b.Status, b.StartedAt = skiff.BuildRunning, tx.now
		if b.Actor == "" {
			b.Actor = tx.actor.Name
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO builds (app_id, id, commit_id, status, actor, builder, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			b.AppID, b.ID, b.Commit, b.Status, b.Actor, b.Builder, formatTime(tx.now)); err != nil {
			return err
		}
		return tx.event(b.AppID, app, "build", fmt.Sprintf("build %d of %s", b.ID, skiff.ShortID(b.Commit)))
	})
}

// FinishBuild records how a build ended.
func (db *DB) FinishBuild(ctx context.Context, b *skiff.Build) error {
	return db.update(ctx, func(tx *Tx) error {
		b.FinishedAt = tx.now
		_, err := tx.ExecContext(ctx, `UPDATE builds SET status = ?, builder = ?, image = ?, buildpacks = ?, phases = ?, error = ?, finished_at = ?
			WHERE app_id = ? AND id = ?`, b.Status, b.Builder, b.Image, mustJSON(b.Buildpacks), mustJSON(b.Phases), b.Error, formatTime(tx.now), b.AppID, b.ID)
		return err
	})
}

const buildColumns = `app_id, id, commit_id, status, actor, builder, image, buildpacks, phases, error, started_at, finished_at`

func scanBuild(row interface{ Scan(...any) error }) (*skiff.Build, error) {
	var b skiff.Build
	var bps, phases, started, finished string
	if err := row.Scan(&b.AppID, &b.ID, &b.Commit, &b.Status, &b.Actor, &b.Builder, &b.Image, &bps, &phases, &b.Error, &started, &finished); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(bps), &b.Buildpacks); err != nil {
		return nil, fmt.Errorf("build %d: buildpacks: %w", b.ID, err)
	}
	if err := json.Unmarshal([]byte(phases), &b.Phases); err != nil {
		return nil, fmt.Errorf("build %d: phases: %w", b.ID, err)
	}
	b.StartedAt, b.FinishedAt = parseTime(started), parseTime(finished)
	return &b, nil
}

// ListBuilds lists an app's builds, newest first.
func (db *DB) ListBuilds(ctx context.Context, appID string, limit int) ([]*skiff.Build, error) {
	if limit <= 0 {
		limit = 50
	}
	return queryAll(ctx, db, scanBuild, `SELECT `+buildColumns+` FROM builds WHERE app_id = ? ORDER BY id DESC LIMIT ?`, appID, limit)
}

// FindBuild returns one build of an app.
func (db *DB) FindBuild(ctx context.Context, appID string, id int) (*skiff.Build, error) {
	b, err := scanBuild(db.read.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE app_id = ? AND id = ?`, appID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "build %d does not exist", id)
	}
	return b, err
}

// FailRunningBuilds marks builds that a daemon restart interrupted.
func (db *DB) FailRunningBuilds(ctx context.Context, reason string) (int, error) {
	var n int64
	err := db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE builds SET status = ?, error = ?, finished_at = ? WHERE status = ?`,
			skiff.BuildFailed, reason, formatTime(tx.now), skiff.BuildRunning)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// CreateRelease stores a pending release numbered after the app's last.
func (db *DB) CreateRelease(ctx context.Context, r *skiff.Release) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(r.AppID)
		if err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(max(version), 0) + 1 FROM releases WHERE app_id = ?`, r.AppID).Scan(&r.Version); err != nil {
			return err
		}
		r.Status, r.CreatedAt, r.Current = skiff.ReleasePending, tx.now, false
		if r.Actor == "" {
			r.Actor = tx.actor.Name
		}
		if r.Config == nil {
			r.Config = map[string]string{}
		}
		if r.Formation, err = tx.formation(r.AppID); err != nil {
			return err
		}
		if err := skiff.ValidateMounts(r.Mounts); err != nil {
			return err
		}
		cron, mounts := r.Cron, r.Mounts
		if cron == nil {
			cron = []skiff.CronJob{}
		}
		if mounts == nil {
			mounts = []skiff.AppMount{}
		}
		change := ""
		if r.Change != nil {
			change = mustJSON(r.Change)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO releases (app_id, version, image, config, process_types, formation, scripts, cron, mounts, build_id, commit_id, description, actor, status, created_at, config_change)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.AppID, r.Version, r.Image, mustJSON(r.Config), mustJSON(r.ProcessTypes), mustJSON(r.Formation),
			mustJSON(r.Scripts), mustJSON(cron), mustJSON(mounts), r.BuildID, r.Commit, r.Description, r.Actor, r.Status, formatTime(tx.now), change); err != nil {
			return err
		}
		return tx.event(r.AppID, app, "release", fmt.Sprintf("v%d: %s", r.Version, r.Description))
	})
}

// DeployRelease makes a pending release the current one and applies the
// config change that made it and the release's mounts, in one transaction:
// after a crash the app has either the old release, config and mounts or
// the new ones.
func (db *DB) DeployRelease(ctx context.Context, appID string, version int, ch *skiff.ConfigChange) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE releases SET status = ? WHERE app_id = ? AND version = ? AND status = ?`,
			skiff.ReleaseDeployed, appID, version, skiff.ReleasePending)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("release v%d of %s is not pending", version, app)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE apps SET current_release = ? WHERE id = ?`, version, appID); err != nil {
			return err
		}
		if ch != nil {
			if err := tx.applyConfig(appID, app, ch); err != nil {
				return err
			}
		}
		var mounts string
		if err := tx.QueryRowContext(ctx, `SELECT mounts FROM releases WHERE app_id = ? AND version = ?`, appID, version).Scan(&mounts); err != nil {
			return err
		}
		var ms []skiff.AppMount
		if err := json.Unmarshal([]byte(mounts), &ms); err != nil {
			return err
		}
		if err := tx.setMounts(appID, ms); err != nil {
			return err
		}
		return tx.event(appID, app, "deploy", fmt.Sprintf("v%d", version))
	})
}

// FailRelease marks a pending release failed.
func (db *DB) FailRelease(ctx context.Context, appID string, version int, reason string) error {
	return db.update(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE releases SET status = ?, error = ? WHERE app_id = ? AND version = ? AND status = ?`,
			skiff.ReleaseFailed, reason, appID, version, skiff.ReleasePending)
		return err
	})
}

// FailPendingReleases marks releases that a daemon restart interrupted.
func (db *DB) FailPendingReleases(ctx context.Context, reason string) (int, error) {
	var n int64
	err := db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE releases SET status = ?, error = ? WHERE status = ?`, skiff.ReleaseFailed, reason, skiff.ReleasePending)
		if err == nil {
			n, _ = res.RowsAffected()
		}
		return err
	})
	return int(n), err
}

const releaseColumns = `r.app_id, r.version, r.image, r.config, r.process_types, r.formation, r.scripts, r.cron, r.mounts, r.build_id, r.commit_id, r.description, r.actor, r.status, r.error, r.created_at, a.current_release = r.version, r.config_change`

func scanRelease(row interface{ Scan(...any) error }) (*skiff.Release, error) {
	var r skiff.Release
	var cfg, types, formation, scripts, cron, mounts, created, change string
	if err := row.Scan(&r.AppID, &r.Version, &r.Image, &cfg, &types, &formation, &scripts, &cron, &mounts, &r.BuildID, &r.Commit, &r.Description, &r.Actor, &r.Status, &r.Error, &created, &r.Current, &change); err != nil {
		return nil, err
	}
	if change != "" {
		if err := json.Unmarshal([]byte(change), &r.Change); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		s string
		v any
	}{{scripts, &r.Scripts}, {cron, &r.Cron}, {mounts, &r.Mounts}} {
		if err := json.Unmarshal([]byte(f.s), f.v); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal([]byte(cfg), &r.Config); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(types), &r.ProcessTypes); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(formation), &r.Formation); err != nil {
		return nil, err
	}
	r.CreatedAt = parseTime(created)
	return &r, nil
}

// ListReleases lists an app's releases, newest first.
func (db *DB) ListReleases(ctx context.Context, appID string, limit int) ([]*skiff.Release, error) {
	if limit <= 0 {
		limit = 50
	}
	return queryAll(ctx, db, scanRelease, `SELECT `+releaseColumns+` FROM releases r JOIN apps a ON a.id = r.app_id
		WHERE r.app_id = ? ORDER BY r.version DESC LIMIT ?`, appID, limit)
}

// FindRelease returns one release.
func (db *DB) FindRelease(ctx context.Context, appID string, version int) (*skiff.Release, error) {
	r, err := scanRelease(db.read.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases r JOIN apps a ON a.id = r.app_id
		WHERE r.app_id = ? AND r.version = ?`, appID, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "release v%d does not exist", version)
	}
	return r, err
}

// CurrentRelease returns the release the app serves.
func (db *DB) CurrentRelease(ctx context.Context, appID string) (*skiff.Release, error) {
	r, err := scanRelease(db.read.QueryRowContext(ctx, `SELECT `+releaseColumns+` FROM releases r JOIN apps a ON a.id = r.app_id
		WHERE r.app_id = ? AND r.version = a.current_release`, appID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "the app has not been deployed yet")
	}
	return r, err
}

// ReleaseImages returns the images of each app's newest keep releases:
// what the image garbage collector must keep.
func (db *DB) ReleaseImages(ctx context.Context, keep int) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT image FROM (
		SELECT image, row_number() OVER (PARTITION BY app_id ORDER BY version DESC) AS n FROM releases WHERE status != 'failed'
	) WHERE n <= ?
	UNION SELECT r.image FROM releases r JOIN apps a ON a.id = r.app_id AND a.current_release = r.version`, keep)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var images []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		images = append(images, s)
	}
	return images, rows.Err()
}

// Formation returns the app's scale per process type.
func (db *DB) Formation(ctx context.Context, appID string) (skiff.Formation, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT process_type, quantity, memory, cpu, pids FROM formation WHERE app_id = ?`, appID)
	if err != nil {
		return nil, err
	}
	return scanFormation(rows)
}

// formation reads the app's scale inside a transaction.
func (tx *Tx) formation(appID string) (skiff.Formation, error) {
	rows, err := tx.QueryContext(tx.ctx, `SELECT process_type, quantity, memory, cpu, pids FROM formation WHERE app_id = ?`, appID)
	if err != nil {
		return nil, err
	}
	return scanFormation(rows)
}

func scanFormation(rows *sql.Rows) (skiff.Formation, error) {
	defer rows.Close()
	f := skiff.Formation{}
	for rows.Next() {
		var t string
		var s skiff.Scale
		if err := rows.Scan(&t, &s.Quantity, &s.Limits.MemoryBytes, &s.Limits.CPU, &s.Limits.Pids); err != nil {
			return nil, err
		}
		f[t] = s
	}
	return f, rows.Err()
}

// SetFormation writes the given process types' scales (others stay).
func (db *DB) SetFormation(ctx context.Context, appID string, f skiff.Formation) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		var detail []string
		for t, s := range f {
			if _, err := tx.ExecContext(ctx, `INSERT INTO formation (app_id, process_type, quantity, memory, cpu, pids) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (app_id, process_type) DO UPDATE SET quantity = excluded.quantity, memory = excluded.memory, cpu = excluded.cpu, pids = excluded.pids`,
				appID, t, s.Quantity, s.Limits.MemoryBytes, s.Limits.CPU, s.Limits.Pids); err != nil {
				return err
			}
			detail = append(detail, fmt.Sprintf("%s=%d(mem=%d,cpu=%g,pids=%d)", t, s.Quantity, s.Limits.MemoryBytes, s.Limits.CPU, s.Limits.Pids))
		}
		return tx.event(appID, app, "formation", strings.Join(detail, " "))
	})
}

// maxReleaseOutput is how much of a release phase's output is kept: its
// last bytes, where a failure explains itself.
const maxReleaseOutput = 256 << 10

// SetReleaseOutput keeps the last bytes of the release phase's output.
func (db *DB) SetReleaseOutput(ctx context.Context, appID string, version int, output []byte) error {
	if len(output) > maxReleaseOutput {
		output = output[len(output)-maxReleaseOutput:]
	}
	return db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE releases SET output = ? WHERE app_id = ? AND version = ?`, output, appID, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return skiff.Errorf(skiff.ENOTFOUND, "release v%d does not exist", version)
		}
		return nil
	})
}

// ReleaseOutput returns what the release phase of a release printed (empty
// when it had none).
func (db *DB) ReleaseOutput(ctx context.Context, appID string, version int) ([]byte, error) {
	var out []byte
	err := db.read.QueryRowContext(ctx, `SELECT output FROM releases WHERE app_id = ? AND version = ?`, appID, version).Scan(&out)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "release v%d does not exist", version)
	}
	return out, err
}
