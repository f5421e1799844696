package deploy

import (
	"context"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// appLocks serializes the operations on each app. A push that finds its app
// busy is refused at once rather than queued: git checked the old ref value
// before the hook ran, so a queued push would build only to fail its ref
// update when the first push lands.
type appLocks struct {
	mu   sync.Mutex
	held map[string]*lockHolder
}

type lockHolder struct {
	what  string
	actor string
	since time.Time
}

// lock takes the app's lock for an operation, or fails with EUNAVAILABLE
// saying what holds it.
func (l *appLocks) lock(ctx context.Context, app *skiff.App, what string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.held[app.ID]; h != nil {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "%s is busy: a %s by %s started %s ago; try again when it has finished",
			app.Name, h.what, h.actor, time.Since(h.since).Round(time.Second))
	}
	l.held[app.ID] = &lockHolder{what: what, actor: skiff.ActorFrom(ctx).Name, since: time.Now()}
	return func() {
		l.mu.Lock()
		delete(l.held, app.ID)
		l.mu.Unlock()
	}, nil
}
