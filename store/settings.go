package store

import (
	"context"
	"database/sql"
	"maps"
	"slices"

	"github.com/skiffhq/skiff"
)

var _ skiff.SettingsService = (*DB)(nil)

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// storedSettings reads the app's settings as the table keeps them.
func storedSettings(ctx context.Context, q querier, appID string) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM app_settings WHERE app_id = ?`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	s := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		s[k] = v
	}
	return s, rows.Err()
}

// Settings returns the app's settings (checks, maintenance, TLS policy,
// build, stopped types). A stored value that does not parse comes back as
// an EINVALID error with the settings, that key at its default.
func (db *DB) Settings(ctx context.Context, appID string) (*skiff.Settings, error) {
	stored, err := storedSettings(ctx, db.read, appID)
	if err != nil {
		return nil, err
	}
	return skiff.ParseSettings(stored)
}

// SetSettings stores s: the keys whose value changed are written (a
// default removes its row), in one transaction with the audit event of
// action, whose detail names what changed.
func (db *DB) SetSettings(ctx context.Context, appID, action string, s *skiff.Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		stored, err := storedSettings(ctx, tx, appID)
		if err != nil {
			return err
		}
		values := s.Values()
		detail := ""
		for _, k := range slices.Sorted(maps.Keys(values)) {
			v := values[k]
			if stored[k] == v {
				continue
			}
			if v == "" {
				_, err = tx.ExecContext(ctx, `DELETE FROM app_settings WHERE app_id = ? AND key = ?`, appID, k)
			} else {
				_, err = tx.ExecContext(ctx, `INSERT INTO app_settings (app_id, key, value) VALUES (?, ?, ?)
					ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value`, appID, k, v)
			}
			if err != nil {
				return err
			}
			if detail != "" {
				detail += " "
			}
			if len(v) > 60 {
				v = v[:60] + "…" // a custom page, say: the trail needs the fact, not the page
			}
			detail += k + "=" + v
		}
		return tx.event(appID, app, action, detail)
	})
}
