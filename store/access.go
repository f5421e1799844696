package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/skiffhq/skiff"
)

var _ skiff.AccessService = (*DB)(nil)

func (tx *Tx) appName(id string) (string, error) {
	var name string
	err := tx.QueryRowContext(tx.ctx, `SELECT name FROM apps WHERE id = ?`, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", skiff.Errorf(skiff.ENOTFOUND, "app does not exist")
	}
	return name, err
}

func (tx *Tx) userID(name string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(tx.ctx, `SELECT id FROM users WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, skiff.Errorf(skiff.ENOTFOUND, "user %s does not exist; an admin adds users with keys:add", name)
	}
	return id, err
}

// GrantAccess lets the user push to and manage the app.
func (db *DB) GrantAccess(ctx context.Context, appID, userName string) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		uid, err := tx.userID(userName)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO access (app_id, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, appID, uid, formatTime(tx.now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already granted: nothing changed, nothing to record
		}
		return tx.event(appID, app, "access:add", userName)
	})
}

// RevokeAccess takes the user's grant away.
func (db *DB) RevokeAccess(ctx context.Context, appID, userName string) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		uid, err := tx.userID(userName)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM access WHERE app_id = ? AND user_id = ?`, appID, uid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "%s has no access grant on %s", userName, app)
		}
		return tx.event(appID, app, "access:remove", userName)
	})
}

// ListAccess lists the users granted access (the owner is on the app).
func (db *DB) ListAccess(ctx context.Context, appID string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT u.name FROM access x JOIN users u ON u.id = x.user_id WHERE x.app_id = ? ORDER BY u.name`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// HasAccess reports whether the user is an admin, the owner or a grantee.
// It reads the user afresh, so a demoted or removed user loses access at once.
func (db *DB) HasAccess(ctx context.Context, appID string, user *skiff.User) (bool, error) {
	if user == nil {
		return false, nil
	}
	var ok bool
	err := db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND admin)
		OR EXISTS (SELECT 1 FROM apps WHERE id = ?2 AND owner_id = ?1)
		OR EXISTS (SELECT 1 FROM access WHERE app_id = ?2 AND user_id = ?1)`, user.ID, appID).Scan(&ok)
	return ok, err
}
