package router

import (
	"context"
	"time"
)

// A shutdown drops no request. net/http's Shutdown closes a connection
// whose request it reads after shutdown began without answering it (the
// client sees EOF), and the fast path closes idle connections at once, so
// the router first stops accepting, lets the connections it already
// accepted get their first request read (briefly), and only then shuts
// the servers down. Connections that arrive meanwhile wait in the socket's
// queue: with socket activation the next daemon answers them. Router.fresh
// counts the accepted connections no request has been read from yet
// (fastConn.notFresh).

// waitFresh returns once no accepted connection waits for its first
// request to be read, after at most d or when ctx ends.
func (r *Router) waitFresh(ctx context.Context, d time.Duration) {
	end := time.Now().Add(d)
	for r.fresh.Load() > 0 && time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}
