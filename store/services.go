package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/skiffhq/skiff"
)

var _ skiff.ServiceStore = (*DB)(nil)

const serviceColumns = `s.id, s.name, s.kind, s.version, s.packages, s.image, s.run_as, s.volume_id, s.address, s.port, s.limits, s.disk,
	COALESCE(u.name, ''), s.password, s.state, s.created_at`

func scanService(row interface{ Scan(...any) error }) (*skiff.Service, error) {
	var s skiff.Service
	var packages, limits, created, state string
	if err := row.Scan(&s.ID, &s.Name, &s.Kind, &s.Version, &packages, &s.Image, &s.RunAs, &s.Volume, &s.Address, &s.Port, &limits, &s.DiskBytes,
		&s.Owner, &s.Password, &state, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(packages), &s.Packages); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(limits), &s.Limits); err != nil {
		return nil, err
	}
	s.State, s.CreatedAt = skiff.ServiceState(state), parseTime(created)
	return &s, nil
}

// CreateService implements skiff.ServiceStore.
func (db *DB) CreateService(ctx context.Context, s *skiff.Service) error {
	if err := skiff.ValidateServiceName(s.Name); err != nil {
		return err
	}
	packages, _ := json.Marshal(s.Packages)
	limits, _ := json.Marshal(s.Limits)
	return db.update(ctx, func(tx *Tx) error {
		var ownerID sql.NullInt64
		if u := tx.actor.User; u != nil {
			ownerID = sql.NullInt64{Int64: u.ID, Valid: true}
			s.Owner = u.Name
		}
		s.ID, s.CreatedAt, s.State = "s"+newAppID()[1:], tx.now, skiff.ServiceCreating
		_, err := tx.ExecContext(ctx, `INSERT INTO services (id, name, kind, version, packages, image, run_as, volume_id, address, port, limits, disk, owner_id, password, state, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.Name, s.Kind, s.Version, string(packages), s.Image, s.RunAs, s.Volume, s.Address, s.Port, string(limits), s.DiskBytes, ownerID, s.Password, string(s.State), formatTime(tx.now))
		if isUniqueViolation(err) {
			var kind string
			if tx.QueryRowContext(ctx, `SELECT kind FROM services WHERE name = ?`, s.Name).Scan(&kind) == nil {
				return skiff.Errorf(skiff.ECONFLICT, "a %s service called %s exists already; choose another name", kind, s.Name)
			}
			return skiff.Errorf(skiff.ECONFLICT, "the address %s is taken; try again", s.Address)
		} else if err != nil {
			return err
		}
		return tx.event("", "", s.Kind+":create", s.Name)
	})
}

// UpdateService implements skiff.ServiceStore.
func (db *DB) UpdateService(ctx context.Context, s *skiff.Service) error {
	packages, _ := json.Marshal(s.Packages)
	limits, _ := json.Marshal(s.Limits)
	return db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE services SET packages = ?, image = ?, run_as = ?, limits = ?, state = ? WHERE id = ?`,
			string(packages), s.Image, s.RunAs, string(limits), string(s.State), s.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "service %s does not exist", s.Name)
		}
		return nil
	})
}

// DeleteService implements skiff.ServiceStore.
func (db *DB) DeleteService(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *Tx) error {
		var name, kind string
		if err := tx.QueryRowContext(ctx, `SELECT name, kind FROM services WHERE id = ?`, id).Scan(&name, &kind); errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM services WHERE id = ?`, id); err != nil {
			return err
		}
		return tx.event("", "", kind+":destroy", name)
	})
}

func (db *DB) findService(ctx context.Context, where string, arg any) (*skiff.Service, error) {
	row := db.read.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services s LEFT JOIN users u ON u.id = s.owner_id WHERE `+where, arg) //nolint:gosec // constant SQL; the value is bound
	s, err := scanService(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "service %v does not exist", arg)
	}
	return s, err
}

// FindService implements skiff.ServiceStore.
func (db *DB) FindService(ctx context.Context, name string) (*skiff.Service, error) {
	return db.findService(ctx, "s.name = ?", name)
}

// FindServiceByID implements skiff.ServiceStore.
func (db *DB) FindServiceByID(ctx context.Context, id string) (*skiff.Service, error) {
	return db.findService(ctx, "s.id = ?", id)
}

// ListServices implements skiff.ServiceStore.
func (db *DB) ListServices(ctx context.Context) ([]*skiff.Service, error) {
	return queryAll(ctx, db, scanService, `SELECT `+serviceColumns+` FROM services s LEFT JOIN users u ON u.id = s.owner_id ORDER BY s.name`)
}

// AddLink implements skiff.ServiceStore.
func (db *DB) AddLink(ctx context.Context, l *skiff.ServiceLink) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(l.AppID)
		if err != nil {
			return err
		}
		var svc string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM services WHERE id = ?`, l.ServiceID).Scan(&svc); errors.Is(err, sql.ErrNoRows) {
			return skiff.Errorf(skiff.ENOTFOUND, "service %s does not exist", l.ServiceID)
		} else if err != nil {
			return err
		}
		var other string
		err = tx.QueryRowContext(ctx, `SELECT s.name FROM service_links l JOIN services s ON s.id = l.service_id WHERE l.app_id = ? AND (l.var = ? OR l.service_id = ?)`,
			l.AppID, l.Var, l.ServiceID).Scan(&other)
		switch {
		case err == nil && other == svc:
			return skiff.Errorf(skiff.ECONFLICT, "%s is linked to %s already", svc, app)
		case err == nil:
			return skiff.Errorf(skiff.ECONFLICT, "%s of %s comes from %s already; unlink it first, or link with --alias", l.Var, app, other)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		l.AppName, l.CreatedAt, l.Pending = app, tx.now, true
		if _, err := tx.ExecContext(ctx, `INSERT INTO service_links (service_id, app_id, var, builds, pending, created_at) VALUES (?, ?, ?, ?, 1, ?)`,
			l.ServiceID, l.AppID, l.Var, l.Builds, formatTime(tx.now)); err != nil {
			return err
		}
		return tx.event(l.AppID, app, "services:link", svc+" as "+l.Var)
	})
}

// CompleteLink implements skiff.ServiceStore.
func (db *DB) CompleteLink(ctx context.Context, serviceID, appID string) error {
	return db.update(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE service_links SET pending = 0 WHERE service_id = ? AND app_id = ?`, serviceID, appID)
		return err
	})
}

// RemoveLink implements skiff.ServiceStore.
func (db *DB) RemoveLink(ctx context.Context, serviceID, appID string) error {
	return db.update(ctx, func(tx *Tx) error {
		var svc, app string
		err := tx.QueryRowContext(ctx, `SELECT s.name, a.name FROM service_links l JOIN services s ON s.id = l.service_id JOIN apps a ON a.id = l.app_id
			WHERE l.service_id = ? AND l.app_id = ?`, serviceID, appID).Scan(&svc, &app)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM service_links WHERE service_id = ? AND app_id = ?`, serviceID, appID); err != nil {
			return err
		}
		return tx.event(appID, app, "services:unlink", svc)
	})
}

func (db *DB) links(ctx context.Context, where string, arg any) ([]*skiff.ServiceLink, error) {
	q := `SELECT l.service_id, l.app_id, a.name, l.var, l.builds, l.pending, l.created_at FROM service_links l JOIN apps a ON a.id = l.app_id`
	var args []any
	if where != "" {
		q += " WHERE " + where
		args = append(args, arg)
	}
	rows, err := db.read.QueryContext(ctx, q+" ORDER BY a.name, l.var", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*skiff.ServiceLink
	for rows.Next() {
		var l skiff.ServiceLink
		var created string
		if err := rows.Scan(&l.ServiceID, &l.AppID, &l.AppName, &l.Var, &l.Builds, &l.Pending, &created); err != nil {
			return nil, err
		}
		l.CreatedAt = parseTime(created)
		out = append(out, &l)
	}
	return out, rows.Err()
}

// Links implements skiff.ServiceStore.
func (db *DB) Links(ctx context.Context, serviceID string) ([]*skiff.ServiceLink, error) {
	if serviceID == "" {
		return db.links(ctx, "", nil)
	}
	return db.links(ctx, "l.service_id = ?", serviceID)
}

// AppLinks implements skiff.ServiceStore.
func (db *DB) AppLinks(ctx context.Context, appID string) ([]*skiff.ServiceLink, error) {
	return db.links(ctx, "l.app_id = ?", appID)
}

// SetBackupSchedule implements skiff.ServiceStore.
func (db *DB) SetBackupSchedule(ctx context.Context, serviceID string, sch *skiff.BackupSchedule) error {
	return db.update(ctx, func(tx *Tx) error {
		if sch == nil || sch.Schedule == "" {
			_, err := tx.ExecContext(ctx, `DELETE FROM service_backup_schedules WHERE service_id = ?`, serviceID)
			return err
		}
		last := ""
		if !sch.LastRun.IsZero() {
			last = formatTime(sch.LastRun)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO service_backup_schedules (service_id, schedule, keep, last_run) VALUES (?, ?, ?, ?)
			ON CONFLICT (service_id) DO UPDATE SET schedule = excluded.schedule, keep = excluded.keep, last_run = excluded.last_run`,
			serviceID, sch.Schedule, sch.Keep, last)
		return err
	})
}

// BackupSchedules implements skiff.ServiceStore.
func (db *DB) BackupSchedules(ctx context.Context) ([]*skiff.BackupSchedule, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT service_id, schedule, keep, last_run FROM service_backup_schedules ORDER BY service_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*skiff.BackupSchedule
	for rows.Next() {
		var s skiff.BackupSchedule
		var last string
		if err := rows.Scan(&s.ServiceID, &s.Schedule, &s.Keep, &last); err != nil {
			return nil, err
		}
		if last != "" {
			s.LastRun = parseTime(last)
		}
		out = append(out, &s)
	}
	return out, rows.Err()
}
