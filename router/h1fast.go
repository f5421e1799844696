package router

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/sys/unix"
)

// fastServer serves one listener. It reads each HTTP/1.1 request itself
// (h1parse.go) and serves the everyday ones on the fast path (h1proxy.go):
// per-connection buffers, the fields as a reused slice, the request to the
// app written by hand, one write per small response, no goroutine but the
// connection's own and no per-request allocation of net/http's Request,
// header maps and contexts. What the fast path is not sure of — bodies it
// would have to stream, upgrades, HTTP/1.0, odd targets, redirects and the
// router's rare pages — it hands to net/http together with the connection,
// which net/http then serves to its end (the request's bytes are replayed
// to it untouched). Over TLS it makes the handshake itself and gives
// HTTP/2 connections to x/net/http2 (h2guard.go).
//
// research/ROUTER.md §1.9 and issue 15 say why: net/http's server alone
// costs more per small request than nginx's whole proxying of it.
type fastServer struct {
	r        *Router
	tls      *tls.Config   // nil: plain HTTP
	fallback *http.Server  // net/http, for handed-over connections
	handoff  *connListener // feeds fallback
	h2       *http2.Server
	port     atomic.Pointer[string] // the listener's port, for X-Forwarded-Port

	closing atomic.Bool
	done    sync.WaitGroup // connections being served

	wmu         sync.Mutex
	workers     map[*fastConn]struct{} // every worker's connection state
	idleWorkers []idleWorker           // most recently idle last
	stopWorkers chan struct{}          // closed by shutdown
	stopOnce    sync.Once
	kick        chan struct{} // capacity 1: a worker went idle and none was
}

type idleWorker struct {
	next  chan net.Conn // capacity 1; nil: end
	since time.Time
}

func (r *Router) newFastServer(tlsConfig *tls.Config) (*fastServer, error) {
	s := &fastServer{r: r, tls: tlsConfig, workers: map[*fastConn]struct{}{}, stopWorkers: make(chan struct{}), kick: make(chan struct{}, 1)}
	s.fallback = r.newServer()
	s.fallback.Handler = http.HandlerFunc(handedOver(r))
	s.fallback.ConnContext = handoffContext
	s.handoff = newConnListener()
	if tlsConfig != nil {
		var err error
		if s.h2, err = configureHTTP2(s.fallback); err != nil {
			return nil, err
		}
	}
	r.srvMu.Lock()
	r.fast = append(r.fast, s)
	r.srvMu.Unlock()
	go func() { _ = s.fallback.Serve(s.handoff) }() // ends with the handoff listener
	go s.retireWorkers()
	go s.watchClients()
	return s, nil
}

// serve accepts on l until it is closed.
func (s *fastServer) serve(l net.Listener) error {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, net.ErrClosed) {
				// Out of descriptors or the like: back off, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.closing.Load() {
			c.Close()
			continue
		}
		s.r.fresh.Add(1)
		s.done.Add(1)
		s.dispatch(c)
	}
}

// Connections are served by a pool of goroutines that outlive them: a new
// goroutine per connection would grow its stack from the smallest size,
// on every connection, to the depth of a proxied request (measured under
// callgrind: more than the rest of a Connection: close request). Under load
// a worker is idle for microseconds; one idle for workerIdle ends, so that
// a quiet router keeps no goroutines.
const workerIdle = time.Second

// dispatch hands c to an idle worker (the one idle the shortest time,
// whose stack is warm), or to a new one.
func (s *fastServer) dispatch(c net.Conn) {
	s.wmu.Lock()
	if n := len(s.idleWorkers); n > 0 {
		w := s.idleWorkers[n-1]
		s.idleWorkers = s.idleWorkers[:n-1]
		s.wmu.Unlock()
		w.next <- c
		return
	}
	fc := new(fastConn)
	s.workers[fc] = struct{}{}
	s.wmu.Unlock()
	go s.worker(fc, c)
}

func (s *fastServer) worker(fc *fastConn, c net.Conn) {
	next := make(chan net.Conn, 1)
	defer func() {
		s.wmu.Lock()
		delete(s.workers, fc)
		s.wmu.Unlock()
	}()
	for c != nil {
		s.serveConn(fc, c)
		s.done.Done()
		s.wmu.Lock()
		select {
		case <-s.stopWorkers:
			s.wmu.Unlock()
			return
		default:
		}
		first := len(s.idleWorkers) == 0
		s.idleWorkers = append(s.idleWorkers, idleWorker{next: next, since: time.Now()})
		s.wmu.Unlock()
		if first {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
		c = <-next
	}
}

// retireWorkers ends the workers idle for longer than workerIdle, and all
// idle ones at shutdown. It sleeps while no worker is idle.
func (s *fastServer) retireWorkers() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.wmu.Lock()
		stopping := false
		select {
		case <-s.stopWorkers:
			stopping = true
		default:
		}
		n := 0
		for n < len(s.idleWorkers) && (stopping || time.Since(s.idleWorkers[n].since) >= workerIdle) {
			s.idleWorkers[n].next <- nil
			n++
		}
		s.idleWorkers = slices.Delete(s.idleWorkers, 0, n)
		wait := time.Duration(-1)
		if len(s.idleWorkers) > 0 {
			wait = workerIdle - time.Since(s.idleWorkers[0].since)
		}
		s.wmu.Unlock()
		if stopping {
			return
		}
		if wait < 0 {
			select {
			case <-s.kick:
			case <-s.stopWorkers:
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.stopWorkers:
		}
	}
}

// watchClients ends the wait for an app's answer when the client has gone
// (closed its side of the connection), as net/http's background read does
// for a handler's context: the app's request is cancelled rather than
// finished for nobody. Only requests waiting longer than a second are
// looked at, once a second, with one poll(2) that reads nothing.
func (s *fastServer) watchClients() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.stopWorkers:
			return
		}
		now := time.Now().UnixNano()
		s.wmu.Lock()
		for fc := range s.workers {
			if w := fc.waiting.Load(); w == 0 || now-w < int64(time.Second) {
				continue
			}
			fc.mu.Lock()
			raw := fc.raw
			fc.mu.Unlock()
			if raw != nil && peerClosed(raw) {
				fc.clientGone.Store(true)
				if dc := fc.waitConn.Load(); dc != nil {
					dc.moved.Add(1)
					dc.conn.SetReadDeadline(time.Unix(1, 0))
				}
			}
		}
		s.wmu.Unlock()
	}
}

// peerClosed reports whether the peer of c has closed its side (or the
// connection broke), without reading: poll(2) for POLLRDHUP, which a FIN
// raises even with unread data before it.
func peerClosed(c net.Conn) bool {
	if bc, ok := c.(*bareConn); ok {
		return bc.peerClosed()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	_ = raw.Control(func(fd uintptr) { closed = pollRDHUP(fd) }) // fails only on a closed conn
	return closed
}

func pollRDHUP(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}} //nolint:gosec // descriptors fit in an int32
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
		return fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
	}
	return false
}

// serveConn runs one accepted connection, with fc (a worker's, reused).
func (s *fastServer) serveConn(fc *fastConn, raw net.Conn) {
	raw = withRawIO(raw)
	fc.reset(s, raw)
	defer fc.notFresh()
	if s.tls != nil {
		tc := tls.Server(raw, s.tls)
		raw.SetDeadline(time.Now().Add(s.r.cfg.ReadHeaderTimeout))
		if err := tc.Handshake(); err != nil {
			s.r.log.Debug("http server", "msg", "TLS handshake error from "+raw.RemoteAddr().String()+": "+err.Error())
			raw.Close()
			return
		}
		raw.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		switch cs.NegotiatedProtocol {
		case http2.NextProtoTLS:
			fc.notFresh()
			s.serveH2(tc)
			return
		case "acme-tls/1": // a CA validating a challenge: the handshake was all
			_ = tc.Close()
			return
		}
		fc.setConn(tc, &cs)
	}
	fc.serve()
}

func (s *fastServer) serveH2(tc *tls.Conn) {
	if s.closing.Load() {
		_ = tc.Close()
		return
	}
	s.h2.ServeConn(newH2GuardConn(tc), &http2.ServeConnOpts{Context: s.r.ctx, Handler: s.r, BaseConfig: s.fallback})
}

// shutdown stops the fast path: idle connections close at once, busy ones
// after their response (which says Connection: close); then it waits for
// them, and for net/http's own, until ctx ends.
func (s *fastServer) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.stopOnce.Do(func() {
		s.wmu.Lock()
		close(s.stopWorkers)
		s.wmu.Unlock()
	})
	_ = s.handoff.Close() // the fallback server's listener: closing it ends Serve
	each := func(f func(*fastConn)) {
		s.wmu.Lock()
		for fc := range s.workers {
			f(fc)
		}
		s.wmu.Unlock()
	}
	wake := func(c *fastConn) { c.wake() }
	each(wake)
	// net/http's Shutdown also ends the HTTP/2 connections (GOAWAY, then
	// they finish), which the workers serve: it runs meanwhile.
	fallback := make(chan error, 1)
	go func() { fallback <- s.fallback.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.done.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return <-fallback
		case <-ctx.Done():
			each(func(c *fastConn) { c.kill() })
			<-fallback //nolint:errcheck // ctx's error is the one to report
			return ctx.Err()
		case <-tick.C:
			each(wake) // connections that went idle since
		}
	}
}

// fastConn is one HTTP/1.1 connection on the fast path (a worker's: it is
// reused for the worker's next connection).
type fastConn struct {
	s        *fastServer
	c        net.Conn // raw, or the *tls.Conn over it
	raw      net.Conn
	tlsState *tls.ConnectionState
	idle     atomic.Bool // waiting for a request: Shutdown may close it
	mu       sync.Mutex  // guards c against shutdown's wake and kill
	fresh    bool        // counted in Router.fresh: no request read yet

	buf     []byte // read buffer: buf[rd:wr] is read and not yet used
	rd, wr  int
	held    []byte        // the buffer before readBody grew it, until the request is done
	out     *bufio.Writer // while a response is written (writer)
	req     h1Request
	resp    h1Response
	scratch []byte // the request to the app, then the response head
	fr      fastReq
	body    clientBody
	peer    string // client address (no port)
	peerBuf []byte
	served  int  // requests so far
	started bool // the current request's first byte has arrived
	idleDL  lazyDeadline

	rand     [256]byte // for request ids
	randLeft int

	// While the app has not answered: since when (unix ns, 0: not
	// waiting), on which connection, and whether watchClients saw the
	// client leave meanwhile.
	waiting    atomic.Int64
	waitConn   atomic.Pointer[directConn]
	clientGone atomic.Bool
}

// wake closes the connection if it waits for a request (shutdown).
func (c *fastConn) wake() {
	c.mu.Lock()
	if c.c != nil && c.idle.Load() {
		c.c.SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

func (c *fastConn) kill() {
	c.mu.Lock()
	if c.c != nil {
		c.c.Close()
	}
	c.mu.Unlock()
}

func (c *fastConn) setConn(nc net.Conn, cs *tls.ConnectionState) {
	c.mu.Lock()
	c.c, c.tlsState = nc, cs
	c.mu.Unlock()
}

// notFresh takes the connection out of Router.fresh, once.
func (c *fastConn) notFresh() {
	if c.fresh {
		c.fresh = false
		c.s.r.fresh.Add(-1)
	}
}

// localPort is the port clients connected to (the listener's), for
// X-Forwarded-Port.
func (s *fastServer) localPort(c net.Conn) string {
	if p := s.port.Load(); p != nil {
		return *p
	}
	p := ""
	if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
		p = strconv.Itoa(ta.Port)
	}
	s.port.Store(&p)
	return p
}

// reset readies a worker's fastConn for the connection raw, keeping what
// the last one grew (field slices, scratch buffers).
func (c *fastConn) reset(s *fastServer, raw net.Conn) {
	c.mu.Lock()
	c.s, c.c, c.raw, c.tlsState, c.fresh = s, raw, raw, nil, true
	c.mu.Unlock()
	c.idle.Store(false)
	c.clientGone.Store(false)
	c.buf, c.held, c.rd, c.wr, c.out, c.served = nil, nil, 0, 0, nil, 0
	c.idleDL.forget()
	c.req.reset()
	c.resp.head, c.resp.unread = nil, 0
	c.resp.copied, c.resp.fields, c.resp.kinds = c.resp.copied[:0], c.resp.fields[:0], c.resp.kinds[:0]
	c.scratch = c.scratch[:0]
}

// Read buffer sizes: most request heads fit in the first; a head that does
// not (big cookies) or a body read whole grows it for that request only.
const fastReadBuf = 4 << 10

func (c *fastConn) serve() {
	c.buf = getReadBuf()
	if bc, ok := c.raw.(*bareConn); ok {
		// As addrHost(RemoteAddr().String()), without the string.
		c.peerBuf = bc.remoteAddrPort().Addr().Unmap().AppendTo(c.peerBuf[:0])
		c.peer = bstr(c.peerBuf)
	} else if ta, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok {
		c.peerBuf = ta.AddrPort().Addr().Unmap().AppendTo(c.peerBuf[:0])
		c.peer = bstr(c.peerBuf)
	} else {
		c.peer = addrHost(c.raw.RemoteAddr().String())
	}
	handedOver := false
	defer func() {
		if !handedOver {
			c.c.Close()
			putReadBuf(c.buf)
		}
		if c.held != nil {
			putReadBuf(c.held)
		}
		if c.out != nil {
			c.out.Reset(nil)
			writers.Put(c.out)
		}
	}()
	maxHead := c.s.r.cfg.MaxHeaderBytes + 4096 // as net/http's allowance
	for {
		v, err := c.readHead(maxHead)
		if err != nil {
			return
		}
		switch v {
		case h1Bad:
			code, page := http.StatusBadRequest, pageBadRequest
			if c.req.reason == "too large" {
				code, page = http.StatusRequestHeaderFieldsTooLarge, pageHeaderTooLarge
			}
			c.writePage(code, page, true)
			return
		case h1Unsure:
			handedOver = true
			c.handOver()
			return
		}
		c.notFresh()
		c.served++
		switch c.serveRequest() {
		case keepGoing:
		case handOver:
			handedOver = true
			c.handOver()
			return
		case closeConn:
			return
		}
		if c.s.closing.Load() {
			return
		}
	}
}

// readHead reads until buf[rd:] starts with a complete request head (or
// one the parser refuses). Waiting for a kept-alive connection's next
// request, the idle timeout applies; from its first byte (and for a new
// connection, from the start), the header timeout.
func (c *fastConn) readHead(maxHead int) (h1Verdict, error) {
	c.started = false
	for {
		if c.wr > c.rd {
			if v := c.req.parse(c.buf[c.rd:c.wr], maxHead); v != h1Need {
				c.idle.Store(false)
				return v, nil
			}
			if !c.started {
				c.started = true
				c.c.SetReadDeadline(time.Now().Add(c.s.r.cfg.ReadHeaderTimeout))
				c.idleDL.forget()
			}
		} else {
			c.rd, c.wr = 0, 0
			// A new connection gets the header timeout for its first
			// request, as on net/http; a kept-alive one the idle timeout.
			wait := c.s.r.cfg.IdleTimeout
			if c.served == 0 {
				wait = c.s.r.cfg.ReadHeaderTimeout
			}
			// The deadline before idle, idle before the check: a shutdown
			// that begins meanwhile either sees the connection idle (and
			// moves the deadline to the past) or is seen here.
			c.idleDL.set(c.c, time.Now(), wait, 0) // shutdown's wake ends the connection: it need not count
			c.idle.Store(true)
			if c.s.closing.Load() {
				return 0, net.ErrClosed
			}
		}
		if err := c.fill(maxHead); err != nil {
			if err == errHeaderTooLarge {
				c.req.reason = "too large"
				return h1Bad, nil
			}
			return 0, err
		}
	}
}

// fill reads more into buf, making room first.
func (c *fastConn) fill(limit int) error {
	if c.wr == len(c.buf) {
		if c.rd > 0 {
			c.wr = copy(c.buf, c.buf[c.rd:c.wr])
			c.rd = 0
		} else if len(c.buf) < limit {
			c.grow(min(2*len(c.buf), limit))
		} else {
			return errHeaderTooLarge
		}
	}
	n, err := c.c.Read(c.buf[c.wr:])
	c.wr += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (c *fastConn) grow(n int) {
	nb := make([]byte, n)
	copy(nb, c.buf[c.rd:c.wr])
	putReadBuf(c.buf)
	c.buf, c.wr, c.rd = nb, c.wr-c.rd, 0
}

// shrink gives back a buffer grown for one request once what is left fits
// the usual one.
func (c *fastConn) shrink() {
	if c.held != nil {
		putReadBuf(c.held)
		c.held = nil
	}
	if len(c.buf) == fastReadBuf || c.wr-c.rd > fastReadBuf {
		return
	}
	nb := getReadBuf()
	c.wr = copy(nb, c.buf[c.rd:c.wr])
	c.rd = 0
	c.buf = nb
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, fastReadBuf); return &b }}

func getReadBuf() []byte { return *readBufs.Get().(*[]byte) }

func putReadBuf(b []byte) {
	if len(b) == fastReadBuf {
		readBufs.Put(&b)
	}
}

// handOver gives the connection to net/http with what was read of it and
// not yet used (the request it could not serve, and any after it).
func (c *fastConn) handOver() {
	hc := &handoffConn{Conn: c.c, raw: c.raw, tlsState: c.tlsState}
	hc.pending = append([]byte(nil), c.buf[c.rd:c.wr]...)
	putReadBuf(c.buf)
	c.notFresh()
	c.c.SetReadDeadline(time.Time{})
	if err := c.s.handoff.put(&framingGuard{Conn: hc}); err != nil {
		c.c.Close()
	}
}

// handoffConn is a connection given to net/http: it first reads what the
// fast path had read.
type handoffConn struct {
	net.Conn
	raw      net.Conn
	tlsState *tls.ConnectionState
	pending  []byte
}

func (h *handoffConn) Read(p []byte) (int, error) {
	if len(h.pending) > 0 {
		n := copy(p, h.pending)
		h.pending = h.pending[n:]
		return n, nil
	}
	return h.Conn.Read(p)
}

// CloseWrite half-closes the connection (a TLS one sends its close_notify).
func (h *handoffConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

type tlsStateKey struct{}

// handoffContext is the fallback server's ConnContext: the framing guard
// (framing.go) and, for a TLS connection, its state.
func handoffContext(ctx context.Context, c net.Conn) context.Context {
	ctx = guardContext(ctx, c)
	if g, ok := c.(*framingGuard); ok {
		if hc, ok := g.Conn.(*handoffConn); ok && hc.tlsState != nil {
			ctx = context.WithValue(ctx, tlsStateKey{}, hc.tlsState)
		}
	}
	return ctx
}

// handedOver is the fallback server's handler: the router's, with the TLS
// state net/http cannot see on a handed-over connection.
func handedOver(r *Router) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.TLS == nil {
			if cs, ok := req.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				req.TLS = cs
			}
		}
		r.ServeHTTP(w, req)
	}
}

// connListener is a net.Listener fed by put.
type connListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) put(c net.Conn) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.closed:
		return net.ErrClosed
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
