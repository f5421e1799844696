package router

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// newTransport returns the one Transport shared by all apps, tuned for
// many requests to few loopback-near upstreams (see research/ROUTER.md
// §1.8–1.9): enough idle connections per instance to keep them alive under
// load, no HTTP/2 and no compression towards the apps (the edge compresses).
// The first-byte timeout is not the Transport's: directTransport applies
// each app's own.
func newTransport(conns *connTracker) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            conns.dial,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		WriteBufferSize:        32 << 10,
		ReadBufferSize:         32 << 10,
	}
}

// errNoFirstByte cancels a request whose app sent no response header in time.
var errNoFirstByte = &timeoutError{"app sent no response header in time"}

// timeoutError is a net.Error with Timeout() true, which the error handler
// answers with 504.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// connTracker knows the open connections to each instance, so that what is
// left on a replaced instance after the drain grace (streams, websockets) can
// be cut by closing them. It costs a lock per connection, not per request.
type connTracker struct {
	dialer net.Dialer
	mu     sync.Mutex
	conns  map[string]map[*trackedConn]struct{} // by ip:port
}

func newConnTracker() *connTracker {
	return &connTracker{
		dialer: net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second},
		conns:  map[string]map[*trackedConn]struct{}{},
	}
}

func (t *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := t.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: withRawIO(c), t: t, addr: addr}
	t.mu.Lock()
	set := t.conns[addr]
	if set == nil {
		set = map[*trackedConn]struct{}{}
		t.conns[addr] = set
	}
	set[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

// closeAll closes every connection to addr.
func (t *connTracker) closeAll(addr string) {
	t.mu.Lock()
	var cs []*trackedConn
	for c := range t.conns[addr] {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	addr string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns[c.addr], c)
		if len(c.t.conns[c.addr]) == 0 {
			delete(c.t.conns, c.addr)
		}
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// proxyTransport retries a refused connection on another instance of the
// app and records passive health.
type proxyTransport struct {
	rt http.RoundTripper
}

func (t *proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	for attempt := 0; ; attempt++ {
		resp, err := t.rt.RoundTrip(req)
		if err == nil {
			st.backend.succeeded()
			return resp, nil
		}
		var ne net.Error
		if req.Context().Err() != nil || (st.body != nil && st.body.err != nil) || errors.As(err, &ne) && ne.Timeout() {
			// The client left or sent a bad body, or the app is slow: an
			// instance that answers slowly is not taken out for it.
			return nil, err
		}
		st.backend.failed()
		if !refused(err) || attempt >= 2 || (st.body != nil && st.body.read) {
			return nil, err
		}
		next := st.app.state.pool.Load().pick(st.backend)
		if next == nil {
			return nil, err
		}
		st.move(next)
		r2 := *req
		u := *req.URL
		u.Host = next.addr
		r2.URL = &u
		if st.body != nil {
			// The Transport closed the ReverseProxy's wrapper of the body,
			// which then refuses reads; ours was never read, so resend it.
			r2.Body = st.body
		}
		req = &r2
	}
}

// refused reports whether err means no connection was made, so the request
// never reached the app and may go to another instance.
func refused(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// retryBody lets a request body survive a refused attempt: the Transport
// closes bodies on error, and the server closes the real one after the
// handler. read tells whether a retry could resend a partial body.
//
// It also keeps a slow client from holding an upstream connection: each read
// must make progress within idle, and the deadline is lifted at the end of
// the body (a deadline left on the connection would end the request while
// the app works on its answer).
type retryBody struct {
	rc   io.ReadCloser
	ctrl *http.ResponseController
	idle time.Duration
	read bool
	err  error // a read error other than EOF: the client's fault, not the app's
}

func (b *retryBody) Read(p []byte) (int, error) {
	b.read = true
	if b.idle > 0 {
		_ = b.ctrl.SetReadDeadline(time.Now().Add(b.idle)) // a closed conn: the read reports it
	}
	n, err := b.rc.Read(p)
	if err != nil {
		if b.idle > 0 {
			_ = b.ctrl.SetReadDeadline(time.Time{})
			b.idle = 0
		}
		if err != io.EOF {
			b.err = err
		}
	}
	return n, err
}

func (b *retryBody) Close() error { return nil }

// bufferPool hands the ReverseProxy 32 KiB copy buffers.
type bufferPool struct{}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBufs.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBufs.Put(&b) }

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}
