package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"

	"github.com/skiffhq/skiff"
)

var _ skiff.AppService = (*DB)(nil)

const appColumns = `a.id, a.name, COALESCE(u.name, ''), a.deploy_branch, a.created_at`

func scanApp(row interface{ Scan(...any) error }) (*skiff.App, error) {
	var app skiff.App
	var created string
	if err := row.Scan(&app.ID, &app.Name, &app.Owner, &app.DeployBranch, &created); err != nil {
		return nil, err
	}
	app.CreatedAt = parseTime(created)
	return &app, nil
}

// newAppID returns a random, stable id that names the app on disk.
func newAppID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateApp stores a new app owned by the actor (none for the local CLI).
func (db *DB) CreateApp(ctx context.Context, app *skiff.App) error {
	if err := skiff.ValidateAppName(app.Name); err != nil {
		return err
	}
	if app.DeployBranch == "" {
		app.DeployBranch = skiff.DefaultDeployBranch
	}
	return db.update(ctx, func(tx *Tx) error {
		var ownerID sql.NullInt64
		if u := tx.actor.User; u != nil {
			ownerID = sql.NullInt64{Int64: u.ID, Valid: true}
			app.Owner = u.Name
		}
		app.ID, app.CreatedAt = newAppID(), tx.now
		_, err := tx.ExecContext(ctx, `INSERT INTO apps (id, name, owner_id, deploy_branch, created_at) VALUES (?, ?, ?, ?, ?)`,
			app.ID, app.Name, ownerID, app.DeployBranch, formatTime(tx.now))
		if isUniqueViolation(err) {
			return skiff.Errorf(skiff.ECONFLICT, "app %s already exists; choose another name", app.Name)
		} else if err != nil {
			return err
		}
		return tx.event(app.ID, app.Name, "apps:create", "")
	})
}

func (db *DB) findApp(ctx context.Context, where string, arg any) (*skiff.App, error) {
	row := db.read.QueryRowContext(ctx, `SELECT `+appColumns+` FROM apps a LEFT JOIN users u ON u.id = a.owner_id WHERE `+where, arg) //nolint:gosec // constant SQL; the value is bound
	app, err := scanApp(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "app %v does not exist", arg)
	}
	return app, err
}

// FindAppByName returns the app called name.
func (db *DB) FindAppByName(ctx context.Context, name string) (*skiff.App, error) {
	return db.findApp(ctx, "a.name = ?", name)
}

// FindAppByID returns the app with the id.
func (db *DB) FindAppByID(ctx context.Context, id string) (*skiff.App, error) {
	return db.findApp(ctx, "a.id = ?", id)
}

// ListApps lists apps by name; VisibleTo limits it to apps the user owns or
// was granted (admins see all).
func (db *DB) ListApps(ctx context.Context, filter skiff.AppFilter) ([]*skiff.App, error) {
	query := `SELECT ` + appColumns + ` FROM apps a LEFT JOIN users u ON u.id = a.owner_id`
	var args []any
	if v := filter.VisibleTo; v != nil && !v.Admin {
		query += ` WHERE a.owner_id = ? OR EXISTS (SELECT 1 FROM access x WHERE x.app_id = a.id AND x.user_id = ?)`
		args = append(args, v.ID, v.ID)
	}
	return queryAll(ctx, db, scanApp, query+` ORDER BY a.name`, args...)
}

// RenameApp gives the app a new name; its id, and so everything on disk,
// stays.
func (db *DB) RenameApp(ctx context.Context, id, newName string) error {
	if err := skiff.ValidateAppName(newName); err != nil {
		return err
	}
	return db.update(ctx, func(tx *Tx) error {
		var old string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM apps WHERE id = ?`, id).Scan(&old); errors.Is(err, sql.ErrNoRows) {
			return skiff.Errorf(skiff.ENOTFOUND, "app does not exist")
		} else if err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE apps SET name = ? WHERE id = ?`, newName, id)
		if isUniqueViolation(err) {
			return skiff.Errorf(skiff.ECONFLICT, "app %s already exists; choose another name", newName)
		} else if err != nil {
			return err
		}
		return tx.event(id, newName, "apps:rename", old+" -> "+newName)
	})
}

// SetDeployBranch sets the branch whose pushes deploy the app.
func (db *DB) SetDeployBranch(ctx context.Context, id, branch string) error {
	if err := skiff.ValidateBranchName(branch); err != nil {
		return err
	}
	return db.update(ctx, func(tx *Tx) error {
		var name string
		if err := tx.QueryRowContext(ctx, `UPDATE apps SET deploy_branch = ? WHERE id = ? RETURNING name`, branch, id).Scan(&name); errors.Is(err, sql.ErrNoRows) {
			return skiff.Errorf(skiff.ENOTFOUND, "app does not exist")
		} else if err != nil {
			return err
		}
		return tx.event(id, name, "git:set", "deploy-branch "+branch)
	})
}

// DeleteApp removes the app and, by cascade, its grants and pushes. Its
// events stay.
func (db *DB) DeleteApp(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *Tx) error {
		var name string
		if err := tx.QueryRowContext(ctx, `DELETE FROM apps WHERE id = ? RETURNING name`, id).Scan(&name); errors.Is(err, sql.ErrNoRows) {
			return skiff.Errorf(skiff.ENOTFOUND, "app does not exist")
		} else if err != nil {
			return err
		}
		return tx.event(id, name, "apps:destroy", "")
	})
}
