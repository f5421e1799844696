package skiff

import (
	"context"
	"errors"
	"time"
)

// RevokeCheckInterval is how often an open session checks that its key and
// its access still stand: a removed key or access ends the session (a
// `logs -t`, a `run`, a push) within about this long.
const RevokeCheckInterval = time.Second

// Revocable returns a context that ends, with a cause that is an
// EUNAUTHORIZED *Error telling why, within interval of the actor's key
// being removed (or given to another user), or, when appID is not empty,
// of the actor losing access to that app. The server's own CLI (an actor
// without a key) is never revoked. An error reading the state keeps the
// session going (the next check decides). Call stop when the session ends.
func Revocable(ctx context.Context, users UserService, access AccessService, actor *Actor, appID string, interval time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if actor == nil || actor.Fingerprint == "" || actor.User == nil {
		return ctx, func() { cancel(nil) }
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if why := revoked(ctx, users, access, actor, appID); why != nil {
				cancel(why)
				return
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

func revoked(ctx context.Context, users UserService, access AccessService, actor *Actor, appID string) error {
	u, err := users.FindUserByFingerprint(ctx, actor.Fingerprint)
	switch {
	case ErrorCode(err) == ENOTFOUND, err == nil && (u.ID != actor.User.ID || u.Name != actor.User.Name):
		return Errorf(EUNAUTHORIZED, "the key of this session was removed: the session ends")
	case err != nil:
		return nil
	}
	if appID == "" || u.Admin {
		return nil
	}
	ok, err := access.HasAccess(ctx, appID, u)
	if err == nil && !ok {
		return Errorf(EUNAUTHORIZED, "your access to this app was removed: the session ends")
	}
	return nil
}

// Revoked returns the reason ctx (from Revocable) ended, or nil if it was
// not revoked.
func Revoked(ctx context.Context) error {
	var e *Error
	if cause := context.Cause(ctx); cause != nil && errors.As(cause, &e) && e.Code == EUNAUTHORIZED {
		return e
	}
	return nil
}
