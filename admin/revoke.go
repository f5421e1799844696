package admin

import "github.com/skiffhq/skiff"

// watchAccess makes the call's context end when the actor loses access to
// the call's app (or their key): a `logs -t` or a `run` of someone removed
// stops within about skiff.RevokeCheckInterval. It returns the stop.
func (c *call) watchAccess() func() {
	s := c.services()
	if s.Users == nil || s.Access == nil || c.app == nil {
		return func() {}
	}
	ctx, stop := skiff.Revocable(c.ctx, s.Users, s.Access, c.actor, c.app.ID, skiff.RevokeCheckInterval)
	c.ctx = ctx
	return stop
}

// revokedOr is the command's result, unless its access went away while it
// ran: then the reason, whatever the command made of its context ending.
func (c *call) revokedOr(err error) error {
	if r := skiff.Revoked(c.ctx); r != nil {
		return r
	}
	return err
}
