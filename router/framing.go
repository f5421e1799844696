package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// framingGuard follows the requests on a plain-HTTP connection as net/http
// reads them (each header block, then its Content-Length or chunked body) to
// find a request that carries both Content-Length and Transfer-Encoding.
// net/http takes such a request by its Transfer-Encoding and drops the
// Content-Length before any handler sees it, so only the bytes tell; RFC
// 9112 §6.1 calls the pair a smuggling attempt and wants the connection
// closed after the answer. When the guard finds one it hands net/http that
// request's header and nothing after it (the body, and whatever was hidden in
// it, never get parsed), and the handler answers 400 and closes
// (rejectAmbiguous).
//
// The guard only counts requests while it is sure to frame them as net/http
// does. Whatever it cannot follow (upgrades, CONNECT, Expect other than
// 100-continue, obs-fold, another HTTP version) ends its watch for the rest
// of the connection: net/http's own checks still apply, and the handler
// closes the connection after any request with a Transfer-Encoding (so the
// guard need not follow chunked bodies either).
// Over TLS net/http decrypts and parses in one step, so there only that
// close applies.
type framingGuard struct {
	net.Conn
	state    guardState
	left     uint64 // bytes of the body still to pass
	line     lineAcc
	block    headerBlock
	requests int64        // header blocks framed so far
	conflict atomic.Int64 // index+1 of the request that had both, 0: none
	served   atomic.Int64 // requests the handler took, for rejectAmbiguous
	stopped  bool         // the conflicting header was delivered: nothing more is
}

type guardState uint8

const (
	inHeader guardState = iota
	inBody              // left bytes of a Content-Length body
	passing             // not following any more
)

// headerBlock is what the guard learned of the header block being read.
type headerBlock struct {
	lines  int
	cl, te bool
	length uint64
	unsure bool // framing the guard cannot follow
}

// lineAcc assembles one line across reads, keeping only what the guard
// looks at: its first bytes, its last bytes and its length.
type lineAcc struct {
	head [48]byte
	tail [16]byte // the last len(tail) bytes, right-aligned
	n    int      // bytes of the line so far (the head keeps up to len(head))
}

func (l *lineAcc) add(p []byte) {
	if l.n < len(l.head) {
		copy(l.head[l.n:], p)
	}
	l.n += len(p)
	if len(p) >= len(l.tail) {
		copy(l.tail[:], p[len(p)-len(l.tail):])
	} else {
		copy(l.tail[:], l.tail[len(p):])
		copy(l.tail[len(l.tail)-len(p):], p)
	}
}

// end is the line's last bytes without a final CR (fewer for a short line).
func (l *lineAcc) end() []byte {
	t := l.tail[len(l.tail)-min(l.n, len(l.tail)):]
	if len(t) > 0 && t[len(t)-1] == '\r' {
		t = t[:len(t)-1]
	}
	return t
}

// bytes is the line's head (all of it when it is short enough), without a
// final CR, and whether that is the whole line.
func (l *lineAcc) bytes() ([]byte, bool) {
	n := l.n
	whole := n <= len(l.head)
	h := l.head[:min(n, len(l.head))]
	if whole && n > 0 && h[n-1] == '\r' {
		h = h[:n-1]
	}
	return h, whole
}

func (g *framingGuard) Read(p []byte) (int, error) {
	if g.stopped {
		return g.held(p)
	}
	n, err := g.Conn.Read(p)
	if g.state != passing && n > 0 {
		if end := g.follow(p[:n]); end >= 0 {
			g.stopped = true
			return end, nil
		}
	}
	return n, err
}

// held reads what follows a conflicting header and drops it. The request
// before it may still be in its handler, where net/http reads in the
// background to notice a client going away, so until the conflicting
// request's handler runs the read only ends with the connection (or the
// deadline net/http sets to stop it); after that its body is at an end.
func (g *framingGuard) held(p []byte) (int, error) {
	for g.served.Load() < g.conflict.Load() {
		if _, err := g.Conn.Read(p); err != nil {
			return 0, err
		}
	}
	return 0, io.EOF
}

// follow moves the state along p. It returns the length of p up to the end
// of a conflicting header block, or -1.
func (g *framingGuard) follow(p []byte) int {
	i := 0
	for i < len(p) && g.state != passing {
		switch g.state {
		case inBody:
			k := min(uint64(len(p)-i), g.left)
			g.left -= k
			i += int(k) //nolint:gosec // at most len(p)
			if g.left == 0 {
				g.state = inHeader
			}
		case inHeader:
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				g.line.add(p[i:])
				return -1
			}
			g.line.add(p[i : i+j])
			i += j + 1
			if g.endLine() {
				return i
			}
			g.line = lineAcc{}
		}
	}
	return -1
}

// endLine takes the line just read; true when it ended a conflicting
// header block.
func (g *framingGuard) endLine() bool {
	line, whole := g.line.bytes()
	if whole && len(line) == 0 && g.block.lines > 0 {
		return g.endBlock()
	}
	g.headerLine(line, whole)
	return false
}

func (g *framingGuard) headerLine(line []byte, whole bool) {
	b := &g.block
	b.lines++
	if b.lines == 1 {
		// The request line: only HTTP/1.1 requests that net/http hands to
		// the handler (not OPTIONS *, CONNECT or PRI) are followed.
		// The method is at its start, the version at its end.
		if bytes.HasPrefix(line, []byte("OPTIONS * ")) || bytes.HasPrefix(line, []byte("CONNECT ")) ||
			bytes.HasPrefix(line, []byte("PRI ")) || !bytes.HasSuffix(g.line.end(), []byte(" HTTP/1.1")) {
			b.unsure = true
		}
		return
	}
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		b.unsure = true // obs-fold, or a stray line
		return
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		if !whole {
			b.unsure = true // a name longer than the head could be anything
		}
		return
	}
	value = bytes.Trim(value, " \t")
	switch {
	case asciiEqualFold(name, "content-length"):
		if b.cl || !whole {
			b.unsure = true
		}
		b.cl = true
		b.length, ok = parseLength(value)
		if !ok {
			b.unsure = true
		}
	case asciiEqualFold(name, "transfer-encoding"):
		if b.te || !whole {
			b.unsure = true
		}
		b.te = true
	case asciiEqualFold(name, "upgrade"):
		b.unsure = true
	case asciiEqualFold(name, "expect"):
		if !whole || !asciiEqualFold(value, "100-continue") {
			b.unsure = true
		}
	}
}

// endBlock decides at the empty line that ends a header block.
func (g *framingGuard) endBlock() bool {
	b := g.block
	g.block = headerBlock{}
	if b.cl && b.te {
		g.requests++
		g.conflict.Store(g.requests)
		return true
	}
	if b.unsure {
		g.state = passing
		return false
	}
	g.requests++
	switch {
	case b.te:
		// The handler closes the connection after a chunked request:
		// nothing after it is served.
		g.state = passing
	case b.cl && b.length > 0:
		g.state, g.left = inBody, b.length
	}
	return false
}

func parseLength(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// ReadFrom and CloseWrite keep net/http's sendfile/splice and its graceful
// close working through the wrapper. CloseWrite reports a connection that
// cannot half-close: ReverseProxy, when an upgraded connection's app side
// ends, half-closes the client's and waits for the client to end too, and
// a nil here left the client waiting for an end that never came.
func (g *framingGuard) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := g.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{g.Conn}, r)
}

func (g *framingGuard) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

type guardKey struct{}

// guardContext is the servers' ConnContext: it lets the handler reach the
// connection's guard.
func guardContext(ctx context.Context, c net.Conn) context.Context {
	if g, ok := c.(*framingGuard); ok {
		return context.WithValue(ctx, guardKey{}, g)
	}
	return ctx
}

// rejectAmbiguous answers 400 and closes for the request the guard found
// with both Content-Length and Transfer-Encoding, and closes after the
// answer to any other HTTP/1 request with a Transfer-Encoding (RFC 9112
// §6.1: where the pair cannot be seen, the request is framed by its
// Transfer-Encoding alone and the connection still ends). It reports whether
// it answered.
func rejectAmbiguous(w http.ResponseWriter, req *http.Request) bool {
	if req.ProtoMajor != 1 {
		return false
	}
	if g, ok := req.Context().Value(guardKey{}).(*framingGuard); ok {
		if n := g.served.Add(1); n == g.conflict.Load() {
			w.Header().Set("Connection", "close")
			writePage(w, http.StatusBadRequest, pageBadRequest)
			return true
		}
	}
	if len(req.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
	return false
}
