package store

import (
	"context"
	"strings"

	"github.com/skiffhq/skiff"
)

var _ skiff.ConfigService = (*DB)(nil)

func (db *DB) readConfig(ctx context.Context, appID string, buildOnly bool) (map[string]string, error) {
	query := `SELECT key, value FROM config_vars WHERE app_id = ?`
	if buildOnly {
		query += ` AND build`
	}
	rows, err := db.read.QueryContext(ctx, query, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		vars[k] = string(v)
	}
	return vars, rows.Err()
}

// Config returns the app's config vars.
func (db *DB) Config(ctx context.Context, appID string) (map[string]string, error) {
	return db.readConfig(ctx, appID, false)
}

// BuildConfig returns the config vars marked build-time.
func (db *DB) BuildConfig(ctx context.Context, appID string) (map[string]string, error) {
	return db.readConfig(ctx, appID, true)
}

// UpdateConfig applies a change to the app's config vars.
func (db *DB) UpdateConfig(ctx context.Context, appID string, ch *skiff.ConfigChange) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		return tx.applyConfig(appID, app, ch)
	})
}

// applyConfig writes a config change and its audit event (keys only: values
// are secrets and stay out of the trail).
func (tx *Tx) applyConfig(appID, app string, ch *skiff.ConfigChange) error {
	for k, v := range ch.Set {
		if _, err := tx.ExecContext(tx.ctx, `INSERT INTO config_vars (app_id, key, value, build) VALUES (?, ?, ?, ?)
			ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value, build = excluded.build OR (?4 AND build)`,
			appID, k, []byte(v), ch.Build); err != nil {
			return err
		}
	}
	for _, k := range ch.Unset {
		if _, err := tx.ExecContext(tx.ctx, `DELETE FROM config_vars WHERE app_id = ? AND key = ?`, appID, k); err != nil {
			return err
		}
	}
	// The whole set must stay within the limits.
	var count, total int
	if err := tx.QueryRowContext(tx.ctx, `SELECT count(*), COALESCE(sum(length(key) + length(value)), 0) FROM config_vars WHERE app_id = ?`, appID).Scan(&count, &total); err != nil {
		return err
	}
	if count > skiff.MaxConfigVarCount || total > skiff.MaxConfigTotal {
		return skiff.Errorf(skiff.EINVALID, "%s would have %d config vars of %d bytes; the limits are %d vars and %d bytes", app, count, total, skiff.MaxConfigVarCount, skiff.MaxConfigTotal)
	}
	action := "config:set"
	if len(ch.Set) == 0 {
		action = "config:unset"
	}
	return tx.event(appID, app, action, strings.Join(ch.Keys(), " "))
}
