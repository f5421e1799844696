package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// directTransport sends bodiless GET and HEAD requests (most of the traffic)
// on the handler's own goroutine: it writes the request and reads the
// response on one pooled connection, where http.Transport hands each request
// to a write goroutine and each response over from a read goroutine (two
// goroutine switches per request, the largest share of what the router
// costs beyond the syscalls; research/ROUTER.md §1.9.11). Every other
// request (bodies, upgrades, other methods) goes to the fallback Transport.
type directTransport struct {
	fallback       http.RoundTripper
	conns          *connTracker
	headerTimeout  time.Duration
	maxHeaderBytes int64
	idleTimeout    time.Duration
	maxIdle        int

	mu   sync.Mutex
	idle map[string][]*directConn // by ip:port, most recent last
}

// directConn is one upstream connection with its buffers.
type directConn struct {
	conn     net.Conn
	lc       *limitConn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	rdl      lazyDeadline  // the read deadline, as its owner of the moment set it
	moved    atomic.Uint32 // read-deadline moves by others (a watcher ending the wait)
}

// limitConn fails reads past a limit while a response header is read, so an
// app cannot make the router buffer an endless header.
type limitConn struct {
	net.Conn
	left int64 // <0: no limit
}

var errHeaderTooLarge = errors.New("app response header too large")

func (c *limitConn) Read(p []byte) (int, error) {
	if c.left < 0 {
		return c.Conn.Read(p)
	}
	if c.left == 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

func newDirectTransport(fallback http.RoundTripper, conns *connTracker, headerTimeout time.Duration) *directTransport {
	return &directTransport{fallback: fallback, conns: conns, headerTimeout: headerTimeout,
		maxHeaderBytes: 64 << 10, idleTimeout: 60 * time.Second, maxIdle: 256,
		idle: map[string][]*directConn{}}
}

func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) || req.Header.Get("Upgrade") != "" || req.Close {
		return t.fallbackRoundTrip(req)
	}
	for attempt := 0; ; attempt++ {
		dc, reused, err := t.get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(req, dc)
		if err == nil {
			return resp, nil
		}
		dc.conn.Close()
		// A kept-alive connection the app closed meanwhile fails before any
		// response byte: the request never reached it, so send it again.
		if reused && attempt == 0 && req.Context().Err() == nil && staleConnError(err) {
			continue
		}
		return nil, err
	}
}

// timeout is the first-byte timeout for req: its app's, or the router's.
func (t *directTransport) timeout(req *http.Request) time.Duration {
	if st := stateFrom(req.Context()); st != nil && st.timeout > 0 {
		return st.timeout
	}
	return t.headerTimeout
}

// fallbackRoundTrip sends req with the fallback Transport under the
// first-byte timeout.
func (t *directTransport) fallbackRoundTrip(req *http.Request) (*http.Response, error) {
	timeout := t.timeout(req)
	if timeout <= 0 {
		return t.fallback.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(timeout, func() { cancel(errNoFirstByte) })
	resp, err := t.fallback.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() && err != nil {
		return nil, errNoFirstByte
	}
	if err != nil {
		cancel(nil)
	}
	// On success ctx lives on with the response body; it ends with the
	// request's own context.
	return resp, err
}

// exchange writes req on dc and reads the response header.
func (t *directTransport) exchange(req *http.Request, dc *directConn) (*http.Response, error) {
	ctx := req.Context()
	timeout := t.timeout(req)
	if timeout > 0 {
		_ = dc.conn.SetReadDeadline(time.Now().Add(timeout)) // fails only on a closed conn, which the read reports
	}
	dc.rdl.forget()
	stop := context.AfterFunc(ctx, func() { dc.moved.Add(1); _ = dc.conn.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(dc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := dc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	dc.lc.left = t.maxHeaderBytes
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(dc.br, req)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational responses (103 Early Hints) are dropped.
	}
	dc.lc.left = -1
	if err != nil {
		stop()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return nil, errNoFirstByte
		}
		return nil, err
	}
	if timeout > 0 {
		_ = dc.conn.SetReadDeadline(time.Time{})
	}
	keep := !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody || req.Method == http.MethodHead {
		resp.Body.Close()
		resp.Body = http.NoBody
		if stop() && keep {
			t.put(req.URL.Host, dc)
		} else {
			dc.conn.Close()
		}
		return resp, nil
	}
	resp.Body = &directBody{rc: resp.Body, t: t, dc: dc, addr: req.URL.Host, stop: stop, keep: keep}
	return resp, nil
}

// staleConnError reports errors of a connection the peer closed while idle.
func staleConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// directBody returns the connection to the pool once the body was read to
// its end, and closes it when the body is abandoned.
type directBody struct {
	rc   io.ReadCloser
	t    *directTransport
	dc   *directConn
	addr string
	stop func() bool
	keep bool
	done bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *directBody) Close() error {
	b.finish(false)
	return nil
}

func (b *directBody) finish(complete bool) {
	if b.done {
		return
	}
	b.done = true
	if b.stop() && complete && b.keep {
		b.t.put(b.addr, b.dc)
		return
	}
	b.dc.conn.Close()
}

// get returns an idle connection to addr, or dials one.
func (t *directTransport) get(ctx context.Context, addr string) (dc *directConn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	for list := t.idle[addr]; len(list) > 0; list = t.idle[addr] {
		dc = list[len(list)-1]
		t.idle[addr] = list[:len(list)-1]
		if now.Sub(dc.lastUsed) < t.idleTimeout {
			t.mu.Unlock()
			return dc, true, nil
		}
		dc.conn.Close()
	}
	t.mu.Unlock()
	dc, err = t.dial(ctx, addr)
	return dc, false, err
}

// dial makes a new connection to addr.
func (t *directTransport) dial(ctx context.Context, addr string) (*directConn, error) {
	c, err := t.conns.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	lc := &limitConn{Conn: c, left: -1}
	return &directConn{conn: c, lc: lc, br: bufio.NewReaderSize(lc, 32<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

func (t *directTransport) put(addr string, dc *directConn) {
	if dc.br.Buffered() > 0 { // the app sent more than its response
		dc.conn.Close()
		return
	}
	dc.lastUsed = time.Now()
	t.mu.Lock()
	list := t.idle[addr]
	// get takes the most recent connection, so old ones collect at the
	// front: close those past the idle timeout here.
	var stale []*directConn
	for len(list) > 0 && dc.lastUsed.Sub(list[0].lastUsed) > t.idleTimeout {
		stale = append(stale, list[0])
		list = list[1:]
	}
	if len(list) < t.maxIdle {
		t.idle[addr] = append(list, dc)
		dc = nil
	} else {
		t.idle[addr] = list
	}
	t.mu.Unlock()
	for _, s := range stale {
		s.conn.Close()
	}
	if dc != nil {
		dc.conn.Close()
	}
}

// dropIdle forgets (and closes) the idle connections to addr, an instance
// that is gone.
func (t *directTransport) dropIdle(addr string) {
	t.mu.Lock()
	list := t.idle[addr]
	delete(t.idle, addr)
	t.mu.Unlock()
	for _, dc := range list {
		dc.conn.Close()
	}
}

// closeIdle closes every idle connection.
func (t *directTransport) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*directConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, dc := range list {
			dc.conn.Close()
		}
	}
}
