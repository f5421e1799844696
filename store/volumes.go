package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/skiffhq/skiff"
)

var _ skiff.VolumeService = (*DB)(nil)

// CreateVolume stores a new volume owned by the actor.
func (db *DB) CreateVolume(ctx context.Context, v *skiff.Volume) error {
	if err := skiff.ValidateVolumeName(v.Name); err != nil {
		return err
	}
	return db.update(ctx, func(tx *Tx) error {
		var ownerID sql.NullInt64
		v.Owner = ""
		if u := tx.actor.User; u != nil {
			ownerID = sql.NullInt64{Int64: u.ID, Valid: true}
			v.Owner = u.Name
		}
		b := make([]byte, 8)
		rand.Read(b)
		v.ID, v.CreatedAt = "vol-"+hex.EncodeToString(b), tx.now
		_, err := tx.ExecContext(ctx, `INSERT INTO volumes (id, name, owner_id, service, size_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			v.ID, v.Name, ownerID, v.Service, v.SizeBytes, formatTime(tx.now))
		if isUniqueViolation(err) {
			return skiff.Errorf(skiff.ECONFLICT, "storage %s already exists", v.Name)
		} else if err != nil {
			return err
		}
		return tx.event("", "", "storage:create", fmt.Sprintf("%s (%d bytes)", v.Name, v.SizeBytes))
	})
}

const volumeQuery = `SELECT v.id, v.name, COALESCE(u.name, ''), v.service, v.size_bytes, v.created_at,
	COALESCE((SELECT json_group_array(name) FROM (SELECT DISTINCT a.name FROM mounts m JOIN apps a ON a.id = m.app_id WHERE m.volume_id = v.id ORDER BY a.name)), '[]')
	FROM volumes v LEFT JOIN users u ON u.id = v.owner_id`

func scanVolume(row interface{ Scan(...any) error }) (*skiff.Volume, error) {
	var v skiff.Volume
	var created, apps string
	if err := row.Scan(&v.ID, &v.Name, &v.Owner, &v.Service, &v.SizeBytes, &created, &apps); err != nil {
		return nil, err
	}
	v.CreatedAt = parseTime(created)
	if err := json.Unmarshal([]byte(apps), &v.Apps); err != nil {
		return nil, err
	}
	return &v, nil
}

// FindVolume returns the volume called name, with the apps that mount it.
func (db *DB) FindVolume(ctx context.Context, name string) (*skiff.Volume, error) {
	v, err := scanVolume(db.read.QueryRowContext(ctx, volumeQuery+` WHERE v.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "storage %s does not exist; make it with storage:ensure-directory %s", name, name)
	}
	return v, err
}

// ListVolumes lists every volume by name.
func (db *DB) ListVolumes(ctx context.Context) ([]*skiff.Volume, error) {
	return queryAll(ctx, db, scanVolume, volumeQuery+` ORDER BY v.name`)
}

// SetVolumeSize records a volume's new size.
func (db *DB) SetVolumeSize(ctx context.Context, name string, size int64) error {
	return db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE volumes SET size_bytes = ? WHERE name = ?`, size, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return skiff.Errorf(skiff.ENOTFOUND, "storage %s does not exist", name)
		}
		return tx.event("", "", "storage:resize", fmt.Sprintf("%s (%d bytes)", name, size))
	})
}

// DeleteVolume removes the volume's record; a volume an app mounts stays.
func (db *DB) DeleteVolume(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, `SELECT id FROM volumes WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return skiff.Errorf(skiff.ENOTFOUND, "storage %s does not exist", name)
		} else if err != nil {
			return err
		}
		var apps string
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(group_concat(DISTINCT a.name), '') FROM mounts m JOIN apps a ON a.id = m.app_id WHERE m.volume_id = ?`, id).Scan(&apps); err != nil {
			return err
		}
		if apps != "" {
			return skiff.Errorf(skiff.ECONFLICT, "storage %s is mounted by %s; storage:unmount it first", name, strings.ReplaceAll(apps, ",", ", "))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM volumes WHERE id = ?`, id); err != nil {
			return err
		}
		return tx.event("", "", "storage:destroy", name)
	})
}

// Mounts returns the app's mounts, in the order they were added.
func (db *DB) Mounts(ctx context.Context, appID string) ([]skiff.AppMount, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT v.name, m.volume_id, m.path, m.process_types FROM mounts m JOIN volumes v ON v.id = m.volume_id
		WHERE m.app_id = ? ORDER BY m.position`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	mounts := []skiff.AppMount{}
	for rows.Next() {
		var m skiff.AppMount
		var types string
		if err := rows.Scan(&m.Volume, &m.VolumeID, &m.Path, &types); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(types), &m.ProcessTypes); err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	return mounts, rows.Err()
}

// SetMounts replaces the app's mounts.
func (db *DB) SetMounts(ctx context.Context, appID string, mounts []skiff.AppMount) error {
	if err := skiff.ValidateMounts(mounts); err != nil {
		return err
	}
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(appID)
		if err != nil {
			return err
		}
		if err := tx.setMounts(appID, mounts); err != nil {
			return err
		}
		return tx.event(appID, app, "storage:mounts", describeMounts(mounts))
	})
}

// setMounts replaces the app's mounts inside a transaction; a volume that
// no longer exists is ENOTFOUND.
func (tx *Tx) setMounts(appID string, mounts []skiff.AppMount) error {
	if _, err := tx.ExecContext(tx.ctx, `DELETE FROM mounts WHERE app_id = ?`, appID); err != nil {
		return err
	}
	for i, m := range mounts {
		var n int
		if err := tx.QueryRowContext(tx.ctx, `SELECT count(*) FROM volumes WHERE id = ?`, m.VolumeID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "storage %s no longer exists; storage:unmount it, or make it again with storage:ensure-directory %s", m.Volume, m.Volume)
		}
		types := m.ProcessTypes
		if types == nil {
			types = []string{}
		}
		if _, err := tx.ExecContext(tx.ctx, `INSERT INTO mounts (app_id, position, volume_id, path, process_types) VALUES (?, ?, ?, ?, ?)`,
			appID, i, m.VolumeID, m.Path, mustJSON(types)); err != nil {
			return err
		}
	}
	return nil
}

func describeMounts(mounts []skiff.AppMount) string {
	parts := make([]string, len(mounts))
	for i, m := range mounts {
		parts[i] = m.Volume + ":" + m.Path
		if len(m.ProcessTypes) > 0 {
			parts[i] += fmt.Sprintf(" (%s)", strings.Join(m.ProcessTypes, ","))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
