package router

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// Serve answers plain HTTP on l (port 80): ACME HTTP-01 challenges, redirects
// to HTTPS for hosts that have a certificate, and proxying for the rest. It
// returns nil after Shutdown.
func (r *Router) Serve(l net.Listener) error {
	return serveErr(r.newServer().Serve(r.track(guardListener{l})))
}

// ServeTLS answers HTTPS (HTTP/1.1 and h2) on l, a plain TCP listener (port
// 443), with certificates chosen per SNI.
func (r *Router) ServeTLS(l net.Listener) error {
	srv := r.newServer()
	srv.TLSConfig = r.tlsConfig()
	if err := configureHTTP2(srv); err != nil {
		return err
	}
	return serveErr(srv.ServeTLS(r.track(l), "", ""))
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
	cl := countingListener{l, &r.accepted}
	r.srvMu.Lock()
	r.listeners = append(r.listeners, cl)
	r.srvMu.Unlock()
	return cl
}

func (r *Router) newServer() *http.Server {
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.cfg.ReadHeaderTimeout,
		IdleTimeout:       r.cfg.IdleTimeout,
		MaxHeaderBytes:    r.cfg.MaxHeaderBytes,
		ErrorLog:          log.New(serverLog{r}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return r.ctx },
		ConnState:         r.accepted.connState,
		ConnContext:       guardContext,
	}
	r.srvMu.Lock()
	r.servers = append(r.servers, srv)
	r.srvMu.Unlock()
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
	servers, listeners := r.servers, r.listeners
	r.srvMu.Unlock()
	// Stop accepting, let what was accepted get its request read, then
	// shut down (conntrack.go says why).
	for _, l := range listeners {
		l.Close()
	}
	r.accepted.waitFresh(ctx, 500*time.Millisecond)
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
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
