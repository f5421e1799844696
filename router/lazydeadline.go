package router

import (
	"net"
	"time"
)

// lazyDeadline moves a connection's read deadline only when it would move
// by more than a slack. On a busy kept-alive connection the idle deadline
// (the client's) and the response deadline (the app's) move by
// microseconds from one request to the next, and each move is a timer
// update in the runtime's poller: 3 % of the router's CPU with keep-alive
// (pprof over bench/router's KA-small, 2026-12-04). A deadline left in
// place is earlier than asked by less than the slack — timeout/16, at most
// a second — and never later.
type lazyDeadline struct {
	at    time.Time // the deadline set last through set; zero: not known
	moved uint32    // the connection's count of moves by others, when it was set
}

// lazyDeadlines is on but for bench/router's variants, which turn it off
// to measure the router without it in the same run.
var lazyDeadlines = true

// set makes c's read deadline now+timeout, or leaves the one set last
// through d if that is earlier by less than the slack. moved counts the
// changes others made to c's deadline (directConn.moved; 0 for a
// connection only its owner changes): a change since the last set makes it
// unknown.
func (d *lazyDeadline) set(c net.Conn, now time.Time, timeout time.Duration, moved uint32) {
	at := now.Add(timeout)
	if lazyDeadlines && !d.at.IsZero() && moved == d.moved {
		if ahead := at.Sub(d.at); ahead >= 0 && ahead < min(timeout/16, time.Second) {
			return
		}
	}
	_ = c.SetReadDeadline(at) // fails only on a closed conn, which the next read reports
	d.at, d.moved = at, moved
}

// forget is for the owner's other changes of the deadline.
func (d *lazyDeadline) forget() { d.at = time.Time{} }
