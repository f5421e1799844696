package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// An upstream call is one request to an app on a pooled connection, as the
// fast path makes them (h1proxy.go) and as net/http's side does for
// bodiless GET and HEAD (serveDirect, h2direct.go): the request written in
// one piece, the response head parsed where it lies (h1resp.go), the body
// relayed to a sink that frames it for the client.

// upstreamCall is what roundTrip needs to know about a request.
type upstreamCall struct {
	app        *app
	backend    *backend // counted in flight; moved on a refused connection
	req        []byte   // the request, head and body
	replayable bool     // may be sent again when a kept-alive connection turns out closed
	isHead     bool
	sent       time.Time // the first-byte timeout runs from here
	resp       *h1Response
	// Who notices a client that leaves while the app works: the fast
	// path's watcher (fc), or the request's context (ctx).
	fc  *fastConn
	ctx context.Context
}

var errClientGone = errors.New("the client went away")

// roundTrip sends x.req to the app and reads the response head into
// x.resp, retrying a refused connection on another instance and a stale
// kept-alive one on a new connection. On success the body is still to be
// read from the connection returned (relayBody, then finishCall).
func (r *Router) roundTrip(x *upstreamCall) (*directConn, error) {
	timeout := x.app.route.ResponseTimeout
	if timeout <= 0 {
		timeout = r.cfg.ResponseTimeout
	}
	for attempt, stale := 0, 0; ; {
		var dc *directConn
		var reused bool
		var err error
		if stale == 0 {
			dc, reused, err = r.direct.get(r.ctx, x.backend.addr)
		} else {
			dc, err = r.direct.dial(r.ctx, x.backend.addr)
		}
		if err == nil && reused && !x.replayable && !connAlive(dc.conn) {
			// A request that may not be sent twice goes only on a
			// connection the app has not closed meanwhile (Node closes
			// idle ones after 5 s).
			dc.conn.Close()
			continue
		}
		if err != nil {
			x.backend.failed()
			if refused(err) && attempt < 2 {
				if next := x.app.state.pool.Load().pick(x.backend); next != nil {
					x.backend.inflight.Add(-1)
					next.inflight.Add(1)
					x.backend = next
					attempt++
					continue
				}
			}
			return nil, err
		}
		anything := false
		if _, err = dc.conn.Write(x.req); err == nil {
			dc.rdl.set(dc.conn, x.sent, timeout, dc.moved.Load())
			dc.lc.left = r.direct.maxHeaderBytes
			anything, err = x.readHead(dc)
			dc.lc.left = -1
		}
		if err != nil {
			dc.conn.Close()
			if x.gone() {
				return nil, errClientGone
			}
			if !anything && reused && stale == 0 && x.replayable && staleConnError(err) {
				// A kept-alive connection the app closed meanwhile: the
				// request never reached it. Once more, on a new one (if the
				// app restarted, the other idle ones are dead too).
				stale++
				continue
			}
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				x.backend.failed()
			}
			return nil, err
		}
		x.backend.succeeded()
		return dc, nil
	}
}

// readHead reads the response head, while whoever watches the client may
// cut the wait short by moving the connection's deadline to the past.
func (x *upstreamCall) readHead(dc *directConn) (bool, error) {
	switch {
	case x.fc != nil:
		x.fc.waitConn.Store(dc)
		x.fc.waiting.Store(x.sent.UnixNano())
		defer func() {
			x.fc.waiting.Store(0)
			x.fc.waitConn.Store(nil)
		}()
	case x.ctx != nil:
		stop := context.AfterFunc(x.ctx, func() { dc.moved.Add(1); dc.conn.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	return x.resp.read(dc.br, x.isHead)
}

func (x *upstreamCall) gone() bool {
	return x.fc != nil && x.fc.clientGone.Load() || x.ctx != nil && x.ctx.Err() != nil
}

// finishCall returns the connection to the pool when its response was
// read to the end and the app keeps it open, and closes it otherwise.
func (r *Router) finishCall(x *upstreamCall, dc *directConn, complete bool) {
	if complete && !x.resp.close {
		r.direct.put(x.backend.addr, dc)
	} else {
		dc.conn.Close()
	}
}

// bodySink is where relayBody puts a response body: the fast path's
// framing writer (clientBody), or a ResponseWriter (directSink).
type bodySink interface {
	write(p []byte) error
	flush() error
}

// relayBody copies the body from the app to out. complete: the body was
// read to its end; ok: every write to out succeeded; trailer: the
// trailer fields of a chunked body, CRLF each.
func relayBody(dc *directConn, resp *h1Response, out bodySink) (complete, ok bool, trailer []byte) {
	br := dc.br
	ok = true
	timed := true // the first-byte deadline is still on the connection
	write := func(p []byte) {
		if ok && out.write(p) != nil {
			ok = false
		}
	}
	// Before a read that may wait for the app, what is buffered goes to
	// the client: streams arrive as they are sent. The body itself may
	// take as long as it takes (a small one is read with its head, and
	// never gets here).
	var cr *chunkReader
	waitFlush := func() {
		if cr != nil && cr.ready() || cr == nil && br.Buffered() > 0 {
			return
		}
		if ok && out.flush() != nil {
			ok = false
		}
		if timed {
			dc.conn.SetReadDeadline(time.Time{})
			dc.rdl.forget()
			timed = false
		}
	}
	switch {
	case resp.bodyless:
		return true, true, nil
	case resp.chunked:
		cr = &chunkReader{br: br}
		for ok {
			waitFlush()
			p, err := cr.next()
			if err == io.EOF {
				return true, ok, cr.trailer
			}
			if err != nil {
				return false, ok, nil
			}
			write(p)
		}
		return false, false, nil
	default:
		left := resp.contentLength // -1: to the end of the connection
		for left != 0 && ok {
			waitFlush()
			p, err := available(br, left)
			if len(p) > 0 {
				write(p)
				br.Discard(len(p))
				if left > 0 {
					left -= int64(len(p))
				}
			}
			if err != nil {
				return left < 0 && err == io.EOF, ok, nil
			}
		}
		return left == 0, ok, nil
	}
}

// available returns what br holds (reading once if it holds nothing), at
// most max bytes (max < 0: no bound but the buffer's).
func available(br *bufio.Reader, max int64) ([]byte, error) {
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return nil, err
		}
	}
	n := int64(br.Buffered())
	if max >= 0 && n > max {
		n = max
	}
	return br.Peek(int(n))
}

// appendForwarded appends the fields the router sets on every request to
// an app (X-Forwarded-*, X-Real-Ip, X-Request-Id, X-Request-Start), then
// the empty line that ends the head.
func appendForwarded[S string | []byte](b []byte, fw forwarded, proto string, host S, port string, id S, start time.Time) []byte {
	b = append(b, "X-Forwarded-For: "...)
	b = append(b, fw.chain...)
	b = append(b, "\r\nX-Real-Ip: "...)
	b = append(b, fw.clientIP...)
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	b = append(b, proto...)
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, host...)
	if port != "" {
		b = append(b, "\r\nX-Forwarded-Port: "...)
		b = append(b, port...)
	}
	b = append(b, "\r\nX-Request-Id: "...)
	b = append(b, id...)
	// Heroku's queue-time header, which APM agents read.
	b = append(b, "\r\nX-Request-Start: t="...)
	b = strconv.AppendInt(b, start.UnixMilli(), 10)
	return append(b, "\r\n\r\n"...)
}

// connAlive reports whether an idle connection to an app is still open
// and quiet: a peek that does not wait finds no EOF, no error and no data.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*trackedConn); ok {
		c = tc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN // nothing to read: open and quiet
		return true                   // never wait
	})
	return err == nil && alive
}
