package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/skiffhq/skiff"
)

// AddDomain attaches a canonical host to an app; a host belongs to one app.
func (db *DB) AddDomain(ctx context.Context, appID, host string) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		var owner string
		err = tx.QueryRowContext(ctx, `SELECT app_id FROM domains WHERE host = ?`, host).Scan(&owner)
		switch {
		case err == nil && owner == appID:
			return nil
		case err == nil:
			return skiff.Errorf(skiff.ECONFLICT, "%s is already attached to another app", host)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO domains (host, app_id, created_at) VALUES (?, ?, ?)`, host, appID, formatTime(tx.now)); err != nil {
			return err
		}
		return tx.event(appID, app, "domains:add", host)
	})
}

// RemoveDomain detaches a host from the app.
func (db *DB) RemoveDomain(ctx context.Context, appID, host string) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE host = ? AND app_id = ?`, host, appID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "%s is not a domain of %s", host, app)
		}
		return tx.event(appID, app, "domains:remove", host)
	})
}

// Domains lists the app's custom hosts.
func (db *DB) Domains(ctx context.Context, appID string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT host FROM domains WHERE app_id = ? ORDER BY host`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	hosts := []string{}
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, rows.Err()
}
