package router

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// acceptedConns follows the connections the router's listeners accepted
// until the server is done with them (closed, or hijacked by an upgrade),
// for a shutdown that drops no request. net/http's Shutdown closes a
// connection whose request it reads after shutdown began without answering
// it (the client sees EOF), so the router first stops accepting, lets the
// connections it already accepted get their first request read (briefly),
// and only then shuts the servers down. Connections that arrive meanwhile
// wait in the socket's queue: with socket activation the next daemon
// answers them.
type acceptedConns struct {
	mu   sync.Mutex
	open map[net.Conn]bool // true while no request has been read yet
}

func (a *acceptedConns) add(c net.Conn) {
	a.mu.Lock()
	if a.open == nil {
		a.open = map[net.Conn]bool{}
	}
	a.open[c] = true
	a.mu.Unlock()
}

// connState is the servers' ConnState hook.
func (a *acceptedConns) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.open[c]; !ok {
		return
	}
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(a.open, c)
	case http.StateActive, http.StateIdle:
		a.open[c] = false
	}
}

// fresh counts the connections that have not sent a request yet.
func (a *acceptedConns) fresh() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, f := range a.open {
		if f {
			n++
		}
	}
	return n
}

// waitFresh returns once no accepted connection waits for its first
// request to be read, after at most d or when ctx ends. (HTTP/2
// connections never leave that state for the hook: they cost the bound.)
func (a *acceptedConns) waitFresh(ctx context.Context, d time.Duration) {
	end := time.Now().Add(d)
	for a.fresh() > 0 && time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// countingListener adds what it accepts to the record; Close stops
// accepting without stopping the server.
type countingListener struct {
	net.Listener
	conns *acceptedConns
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.conns.add(c)
	}
	return c, err
}
