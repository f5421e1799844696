package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/skiffhq/skiff"
)

var _ skiff.UserService = (*DB)(nil)

func scanUser(row interface{ Scan(...any) error }) (*skiff.User, error) {
	var u skiff.User
	var created string
	if err := row.Scan(&u.ID, &u.Name, &u.Admin, &created); err != nil {
		return nil, err
	}
	u.CreatedAt = parseTime(created)
	return &u, nil
}

// AddKey adds keys to a user, creating the user if needed, in one
// transaction: all of them or none.
func (db *DB) AddKey(ctx context.Context, userName string, admin bool, keys ...*skiff.Key) (*skiff.User, error) {
	if err := skiff.ValidateUserName(userName); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, skiff.Errorf(skiff.EINVALID, "no key to add")
	}
	var user *skiff.User
	err := db.update(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (name, admin, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET admin = admin OR excluded.admin`, userName, admin, formatTime(tx.now))
		if err != nil {
			return err
		}
		if user, err = scanUser(tx.QueryRowContext(ctx, `SELECT id, name, admin, created_at FROM users WHERE name = ?`, userName)); err != nil {
			return err
		}
		for _, key := range keys {
			_, err = tx.ExecContext(ctx, `INSERT INTO keys (user_id, fingerprint, type, public_key, comment, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				user.ID, key.Fingerprint, key.Type, key.PublicKey, key.Comment, formatTime(tx.now))
			if isUniqueViolation(err) {
				return skiff.Errorf(skiff.ECONFLICT, "key %s is already registered (or given twice); no key was added. Remove it first to give it to someone else, or leave it out", key.Fingerprint)
			} else if err != nil {
				return err
			}
			key.User, key.CreatedAt = user.Name, tx.now
			detail := "key " + key.Fingerprint + " for " + userName
			if admin {
				detail += " (admin)"
			}
			if err := tx.event("", "", "keys:add", detail); err != nil {
				return err
			}
		}
		return nil
	})
	return user, err
}

// FindUserByFingerprint returns the user who holds the key.
func (db *DB) FindUserByFingerprint(ctx context.Context, fingerprint string) (*skiff.User, error) {
	u, err := scanUser(db.read.QueryRowContext(ctx, `SELECT u.id, u.name, u.admin, u.created_at
		FROM keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = ?`, fingerprint))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "unknown key")
	}
	return u, err
}

// FindUserByName returns the named user.
func (db *DB) FindUserByName(ctx context.Context, name string) (*skiff.User, error) {
	u, err := scanUser(db.read.QueryRowContext(ctx, `SELECT id, name, admin, created_at FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "user %s does not exist", name)
	}
	return u, err
}

// ListUsers lists users by name.
func (db *DB) ListUsers(ctx context.Context) ([]*skiff.User, error) {
	return queryAll(ctx, db, scanUser, `SELECT id, name, admin, created_at FROM users ORDER BY name`)
}

// ListKeys lists every key, by user then age.
func (db *DB) ListKeys(ctx context.Context) ([]*skiff.Key, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT k.fingerprint, k.type, k.public_key, k.comment, u.name, k.created_at
		FROM keys k JOIN users u ON u.id = k.user_id ORDER BY u.name, k.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []*skiff.Key{}
	for rows.Next() {
		var k skiff.Key
		var created string
		if err := rows.Scan(&k.Fingerprint, &k.Type, &k.PublicKey, &k.Comment, &k.User, &created); err != nil {
			return nil, err
		}
		k.CreatedAt = parseTime(created)
		keys = append(keys, &k)
	}
	return keys, rows.Err()
}

// RemoveKey removes one key of the user (or all of them when fingerprint is
// empty); a user left without keys is removed. The last admin cannot be
// removed, so the server never locks itself out.
func (db *DB) RemoveKey(ctx context.Context, userName, fingerprint string) (int, error) {
	var removed int
	err := db.update(ctx, func(tx *Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT id, name, admin, created_at FROM users WHERE name = ?`, userName))
		if errors.Is(err, sql.ErrNoRows) {
			return skiff.Errorf(skiff.ENOTFOUND, "user %s does not exist", userName)
		} else if err != nil {
			return err
		}
		var res sql.Result
		if fingerprint == "" {
			res, err = tx.ExecContext(ctx, `DELETE FROM keys WHERE user_id = ?`, u.ID)
		} else {
			res, err = tx.ExecContext(ctx, `DELETE FROM keys WHERE user_id = ? AND fingerprint = ?`, u.ID, fingerprint)
		}
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "user %s has no key %s", userName, fingerprint)
		}
		removed = int(n)
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE user_id = ?`, u.ID).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			if u.Admin {
				var admins int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE admin AND id != ?`, u.ID).Scan(&admins); err != nil {
					return err
				}
				if admins == 0 {
					return skiff.Errorf(skiff.ECONFLICT, "%s is the last admin; add another admin before removing their last key", userName)
				}
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, u.ID); err != nil {
				return err
			}
		}
		detail := "key " + fingerprint + " of " + userName
		if fingerprint == "" {
			detail = "all keys of " + userName
		}
		return tx.event("", "", "keys:remove", detail)
	})
	return removed, err
}
