package store

import (
	"context"

	"github.com/skiffhq/skiff"
)

var (
	_ skiff.EventService = (*DB)(nil)
	_ skiff.PushService  = (*DB)(nil)
)

// ListEvents lists audit events, newest first.
func (db *DB) ListEvents(ctx context.Context, filter skiff.EventFilter) ([]*skiff.Event, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = 100
	}
	query := `SELECT id, created_at, actor, fingerprint, app_id, app_name, action, detail FROM events`
	args := []any{}
	if filter.AppID != "" {
		query += ` WHERE app_id = ?`
		args = append(args, filter.AppID)
	}
	rows, err := db.read.QueryContext(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	events := []*skiff.Event{}
	for rows.Next() {
		var e skiff.Event
		var created string
		if err := rows.Scan(&e.ID, &created, &e.Actor, &e.Fingerprint, &e.AppID, &e.App, &e.Action, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = parseTime(created)
		events = append(events, &e)
	}
	return events, rows.Err()
}

// RecordEvent writes a stand-alone event for the actor in ctx.
func (db *DB) RecordEvent(ctx context.Context, e *skiff.Event) error {
	return db.update(ctx, func(tx *Tx) error {
		return tx.event(e.AppID, e.App, e.Action, e.Detail)
	})
}

// RecordPush records a push and its audit event.
func (db *DB) RecordPush(ctx context.Context, p *skiff.Push) error {
	return db.update(ctx, func(tx *Tx) error {
		app, err := tx.appName(p.AppID)
		if err != nil {
			return err
		}
		p.CreatedAt = tx.now
		if p.Pusher == "" {
			p.Pusher = tx.actor.Name
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO pushes (app_id, ref, old_commit, new_commit, pusher, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			p.AppID, p.Ref, p.OldCommit, p.Commit, p.Pusher, formatTime(tx.now)).Scan(&p.ID)
		if err != nil {
			return err
		}
		return tx.event(p.AppID, app, "push", p.Ref+" "+skiff.ShortID(p.OldCommit)+".."+skiff.ShortID(p.Commit))
	})
}

// ListPushes lists an app's pushes, newest first.
func (db *DB) ListPushes(ctx context.Context, appID string, limit int) ([]*skiff.Push, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, app_id, ref, old_commit, new_commit, pusher, created_at FROM pushes WHERE app_id = ? ORDER BY id DESC LIMIT ?`, appID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	pushes := []*skiff.Push{}
	for rows.Next() {
		var p skiff.Push
		var created string
		if err := rows.Scan(&p.ID, &p.AppID, &p.Ref, &p.OldCommit, &p.Commit, &p.Pusher, &created); err != nil {
			return nil, err
		}
		p.CreatedAt = parseTime(created)
		pushes = append(pushes, &p)
	}
	return pushes, rows.Err()
}
