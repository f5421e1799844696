package gitserver

import (
	"context"
	"fmt"

	"github.com/gliderlabs/ssh"

	"github.com/skiffhq/skiff"
)

// revocable is ctx ending when actor's key goes away, or their access to
// appID (when given): open sessions, streams, one-off runs and pushes of
// someone removed end within about skiff.RevokeCheckInterval.
func (s *Server) revocable(ctx context.Context, actor *skiff.Actor, appID string) (context.Context, context.CancelFunc) {
	every := s.cfg.RevokeCheck
	if every == 0 {
		every = skiff.RevokeCheckInterval
	}
	return skiff.Revocable(ctx, s.cfg.Users, s.cfg.Access, actor, appID, every)
}

// endRevoked tells a revoked session why it ends, and ends it with 1.
func endRevoked(ctx context.Context, sess ssh.Session, code int) int {
	if err := skiff.Revoked(ctx); err != nil {
		fmt.Fprintf(sess.Stderr(), " !     %s\n", skiff.ErrorMessage(err))
		return 1
	}
	return code
}

// endWith is ctx ending also when other does, with other's cause: a push's
// pipeline (run for the hook, on the control socket's context) ends with
// the SSH session that pushes.
func endWith(ctx, other context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if other == nil {
		return ctx, func() { cancel(nil) }
	}
	stop := context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return ctx, func() { stop(); cancel(nil) }
}
