package skiff

import (
	"context"
	"time"
)

// Event is an audit record: who did what to which app, and when.
type Event struct {
	ID          int64     `json:"id"`
	Time        time.Time `json:"time"`
	Actor       string    `json:"actor"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	AppID       string    `json:"app_id,omitempty"`
	App         string    `json:"app,omitempty"` // the app's name when the event happened
	Action      string    `json:"action"`        // e.g. "apps:create", "push"
	Detail      string    `json:"detail,omitempty"`
}

// EventFilter selects events, newest first.
type EventFilter struct {
	AppID string // "" for all apps
	Limit int    // 0 for a default
}

// EventService lists the audit trail. Events are written by the other
// services, in the transaction of the change they record.
type EventService interface {
	ListEvents(ctx context.Context, filter EventFilter) ([]*Event, error)
	// RecordEvent writes an event that has no other state change to join
	// (such as a refused push).
	RecordEvent(ctx context.Context, e *Event) error
}
