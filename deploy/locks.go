package deploy

import (
	"context"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// appLocks serializes the operations on each app. A user's operation that
// finds its app busy with another user's is refused at once rather than
// queued: git checked the old ref value before the hook ran, so a queued
// push would build only to fail its ref update when the first push lands.
// Work the daemon does on its own (converging at boot, syncing backends)
// is short, so users' operations wait for it instead.
type appLocks struct {
	mu   sync.Mutex
	held map[string]*lockHolder
}

type lockHolder struct {
	what       string
	actor      string
	since      time.Time
	background bool
	done       chan struct{} // closed on release
}

// lock takes the app's lock for a user's operation: it waits while the
// daemon's own work holds it, and fails with EUNAVAILABLE, saying what
// holds it, while another user's operation does.
func (l *appLocks) lock(ctx context.Context, app *skiff.App, what string) (func(), error) {
	return l.acquire(ctx, app, what, false)
}

// lockBackground takes the lock for the daemon's own work, or fails at once
// when the app is busy.
func (l *appLocks) lockBackground(ctx context.Context, app *skiff.App, what string) (func(), error) {
	return l.acquire(ctx, app, what, true)
}

func (l *appLocks) acquire(ctx context.Context, app *skiff.App, what string, background bool) (func(), error) {
	for {
		l.mu.Lock()
		h := l.held[app.ID]
		if h == nil {
			h = &lockHolder{what: what, actor: skiff.ActorFrom(ctx).Name, since: time.Now(), background: background, done: make(chan struct{})}
			l.held[app.ID] = h
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.held, app.ID)
				close(h.done)
				l.mu.Unlock()
			}, nil
		}
		if background || !h.background {
			l.mu.Unlock()
			return nil, skiff.Errorf(skiff.EUNAVAILABLE, "%s is busy: a %s by %s started %s ago; try again when it has finished",
				app.Name, h.what, h.actor, time.Since(h.since).Round(time.Second))
		}
		done := h.done
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
