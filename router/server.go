package router

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Listen opens a TCP listener for Serve or ServeTLS, as net.Listen does
// but without TCP keep-alive probes on the connections it accepts: the
// router ends idle connections itself (Config.IdleTimeout), as nginx does
// by default, and Go's keep-alive costs four system calls per connection
// (measured: a tenth of a Connection: close request's CPU). And with
// TCP_DEFER_ACCEPT (nginx's `listen … deferred`): the kernel hands over a
// connection once its first bytes (the request, or a TLS ClientHello) have
// arrived, so that the first read finds them rather than parking the
// connection's goroutine until they come (a read, a wake-up and a context
// switch less per connection). Every client of these ports speaks first; one
// that sends nothing is accepted once the kernel's deferral ends (about
// deferAcceptSeconds) and then meets the header timeout as before. Any
// listener works with Serve; this one is cheaper.
func Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: deferAccept}
	return lc.Listen(context.Background(), "tcp", addr)
}

// DeferAccept gives a listener that was opened elsewhere (one systemd
// passed, socket activation) Listen's TCP_DEFER_ACCEPT. The option may be set
// on a socket that already listens; connections waiting in its queue are
// not affected.
func DeferAccept(l net.Listener) error {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return fmt.Errorf("TCP_DEFER_ACCEPT: %T is not a socket", l)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("TCP_DEFER_ACCEPT: %w", err)
	}
	return deferAccept("", "", rc)
}

// deferAcceptSeconds is how long the kernel holds a connection that has
// sent nothing before accepting it anyway.
const deferAcceptSeconds = 2

func deferAccept(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferAcceptSeconds) //nolint:gosec // a socket descriptor fits in an int
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("TCP_DEFER_ACCEPT: %w", err)
	}
	return nil
}

// Serve answers plain HTTP on l (port 80): ACME HTTP-01 challenges, redirects
// to HTTPS for hosts that have a certificate, and proxying for the rest. It
// returns nil after Shutdown. A TCP listener is taken over (bareconn.go): it
// is closed at once, its socket accepted on through a duplicate that
// Shutdown closes; closing l no longer stops Serve.
func (r *Router) Serve(l net.Listener) error {
	s, err := r.newFastServer(nil)
	if err != nil {
		return err
	}
	return serveErr(s.serve(r.track(listenBare(l))))
}

// ServeTLS answers HTTPS (HTTP/1.1 and h2) on l, a plain TCP listener (port
// 443), with certificates chosen per SNI. l is taken over as Serve says.
func (r *Router) ServeTLS(l net.Listener) error {
	s, err := r.newFastServer(r.tlsConfig())
	if err != nil {
		return err
	}
	return serveErr(s.serve(r.track(listenBare(l))))
}

// serveErr is nil when the server stopped because of Shutdown (which
// closes the listeners itself first).
func serveErr(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (r *Router) track(l net.Listener) net.Listener {
	r.srvMu.Lock()
	r.listeners = append(r.listeners, l)
	r.srvMu.Unlock()
	return l
}

func (r *Router) newServer() *http.Server {
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.cfg.ReadHeaderTimeout,
		IdleTimeout:       r.cfg.IdleTimeout,
		MaxHeaderBytes:    r.cfg.MaxHeaderBytes,
		ErrorLog:          log.New(serverLog{r}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return r.ctx },
		ConnContext:       guardContext,
	}
	return srv
}

// serverLog sends net/http's own messages (TLS handshake failures from
// scanners, mostly) to the debug log.
type serverLog struct{ r *Router }

func (s serverLog) Write(p []byte) (int, error) {
	s.r.log.Debug("http server", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// Shutdown stops accepting, waits for requests in flight until ctx ends,
// then stops certificate maintenance and flushes the access logs.
func (r *Router) Shutdown(ctx context.Context) error {
	r.srvMu.Lock()
	fast, listeners := r.fast, r.listeners
	r.srvMu.Unlock()
	// Stop accepting, let what was accepted get its request read, then
	// shut down (conntrack.go says why).
	for _, l := range listeners {
		l.Close()
	}
	r.waitFresh(ctx, 500*time.Millisecond)
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, s := range fast {
		wg.Go(func() {
			if err := s.shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.cancel()
	if r.acme != nil {
		if err := r.acme.stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	r.access.stop()
	r.transport.CloseIdleConnections()
	r.direct.closeIdle()
	return errors.Join(errs...)
}

// TailAccessLog delivers the app's access log lines (JSON, one per request)
// as they are written, until ctx ends; for `logs -t -p router`.
func (r *Router) TailAccessLog(ctx context.Context, appID string) <-chan []byte {
	return r.access.tail(ctx, appID)
}

// AccessLogPath is the app's current access log file (older ones end in .1, .2 …).
func (r *Router) AccessLogPath(appID string) string { return r.access.path(appID) }
