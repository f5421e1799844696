package router

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

// reqState is what one proxied request carries through the ReverseProxy's
// hooks (in its context).
type reqState struct {
	app      *app
	backend  *backend
	host     string // canonical host routed by
	clientIP string
	xff      string // X-Forwarded-For to send
	proto    string // http or https
	port     string // the port the client connected to
	reqID    string
	start    time.Time
	timeout  time.Duration // an app's own first-byte timeout; 0: the router's
	body     *retryBody
	coding   coding // what the client accepts best
	hsts     bool   // add Strict-Transport-Security unless the app sets it
	rw       *respWriter
}

// move re-counts the request on another backend after a refused attempt.
func (st *reqState) move(b *backend) {
	st.backend.inflight.Add(-1)
	b.inflight.Add(1)
	st.backend = b
}

// ServeHTTP routes one request.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if rejectAmbiguous(w, req) {
		return
	}
	host, ok := skiff.CanonicalHost(req.Host)
	if !ok {
		writePage(w, http.StatusBadRequest, pageBadRequest)
		return
	}
	if req.TLS == nil && r.acme != nil && r.acme.handleHTTPChallenge(w, req, host) {
		return
	}
	a := r.table.Load().lookup(host)
	if a == nil {
		writePage(w, http.StatusNotFound, pageNotFound)
		return
	}
	fw := r.forwardedFor(req, clientIP(req))
	if req.TLS != nil {
		if sni := req.TLS.ServerName; sni != "" && sni != host && !r.misdirectedOK(sni, host) {
			writePage(w, http.StatusMisdirectedRequest, pageMisdirected)
			return
		}
	} else if !a.route.NoRedirect && fw.proto != "https" && r.hasCertFor(a, host) {
		r.redirectHTTPS(w, req, host)
		return
	}

	st := &reqState{app: a, host: host, start: time.Now(), reqID: newRequestID(), clientIP: fw.clientIP, xff: fw.chain}
	rw := &respWriter{w: w, st: st}
	st.rw = rw
	defer r.logRequest(req, st)
	if a.route.Maintenance {
		rw.Header().Set("Retry-After", "60")
		writeBytes(rw, http.StatusServiceUnavailable, a.maintenance)
		return
	}
	if a.maxBody > 0 && req.ContentLength > a.maxBody {
		writePage(rw, http.StatusRequestEntityTooLarge, pageTooLarge)
		return
	}
	b := a.state.pool.Load().pick(nil)
	if b == nil {
		writePage(rw, http.StatusServiceUnavailable, pageNoInstances)
		return
	}
	b.inflight.Add(1)
	st.backend = b
	defer func() { st.backend.inflight.Add(-1) }()

	if req.TLS != nil {
		st.proto = "https"
	} else {
		st.proto = "http"
	}
	if la, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok {
			st.port = strconv.Itoa(ta.Port)
		}
	}
	if fw.proto != "" {
		st.proto = fw.proto
	}
	if fw.port != "" {
		st.port = fw.port
	}
	st.coding = negotiate(req.Header)
	st.hsts = (req.TLS != nil || fw.proto == "https") && a.route.HSTS
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		body := req.Body
		if a.maxBody > 0 {
			body = http.MaxBytesReader(rw, body, a.maxBody)
		}
		st.body = &retryBody{rc: body, ctrl: http.NewResponseController(w), idle: r.cfg.BodyIdleTimeout}
		req.Body = st.body
	}
	if strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
		// h2c upgrades smuggle requests past the proxy: never forward them.
		req.Header.Del("Upgrade")
		req.Header.Del("Http2-Settings")
	}
	st.timeout = a.route.ResponseTimeout
	if st.body == nil && r.serveDirect(rw, req, st) {
		return
	}
	r.proxy.ServeHTTP(rw, req.WithContext(context.WithValue(req.Context(), stateKey{}, st)))
}

// rewrite builds the request to the app. The ReverseProxy has already
// removed hop-by-hop headers (including those the client named in
// Connection) and the client's X-Forwarded-For/-Host/-Proto and Forwarded, so
// the forwarded headers set here are always ours.
func (r *Router) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = st.backend.addr
	out.Host = pr.In.Host
	h := out.Header
	h["X-Forwarded-For"] = []string{st.xff}
	h["X-Real-Ip"] = []string{st.clientIP}
	h["X-Forwarded-Proto"] = []string{st.proto}
	h["X-Forwarded-Host"] = []string{pr.In.Host}
	if st.port != "" {
		h["X-Forwarded-Port"] = []string{st.port}
	} else {
		delete(h, "X-Forwarded-Port")
	}
	h["X-Request-Id"] = []string{st.reqID}
	// Heroku's queue-time header, which APM agents read.
	h["X-Request-Start"] = []string{"t=" + strconv.FormatInt(st.start.UnixMilli(), 10)}
}

// modifyResponse decides about compression once the app's headers are known.
func (r *Router) modifyResponse(resp *http.Response) error {
	st := stateFrom(resp.Request.Context())
	if st.hsts && resp.Header.Get("Strict-Transport-Security") == "" {
		resp.Header.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		st.rw.status = http.StatusSwitchingProtocols
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
			resp.Body = &wsBody{ReadWriteCloser: rwc, b: st.backend}
		}
		return nil
	}
	if st.coding != identity && shouldCompress(resp) {
		h := resp.Header
		h.Del("Content-Length")
		h.Set("Content-Encoding", st.coding.String())
		h.Add("Vary", "Accept-Encoding")
		if et := h.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
			h.Set("Etag", "W/"+et)
		}
		st.rw.compress = st.coding
	}
	return nil
}

// wsBody is the app's side of a websocket. When the drain cuts it, the client
// gets a close frame with 1001 (going away), as a server that shuts down
// would send, instead of a bare reset.
type wsBody struct {
	io.ReadWriteCloser
	b    *backend
	sent bool
}

var wsGoingAway = []byte{0x88, 0x02, 0x03, 0xe9} // FIN+close, length 2, code 1001

func (w *wsBody) Read(p []byte) (int, error) {
	n, err := w.ReadWriteCloser.Read(p)
	if err != nil && n == 0 && !w.sent && w.b.cut.Load() && len(p) >= len(wsGoingAway) {
		w.sent = true
		return copy(p, wsGoingAway), nil
	}
	if w.sent && err == io.EOF {
		// The drain's end, not the app's: the client's side closes at
		// once too, rather than half-closed until the client hangs up.
		return n, errDrained
	}
	return n, err
}

var errDrained = errors.New("the instance was drained")

// proxyError answers a request whose app failed: 504 when the app sent
// nothing in time, 413 for a body over the cap, 502 otherwise.
func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	st := stateFrom(req.Context())
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe) || st.body != nil && errors.As(st.body.err, &mbe):
		writePage(w, http.StatusRequestEntityTooLarge, pageTooLarge)
	case st.body != nil && errors.As(st.body.err, &ne) && ne.Timeout():
		writePage(w, http.StatusRequestTimeout, pageBodyTimeout) // the client stopped sending
	case st.body != nil && st.body.err != nil && req.Context().Err() == nil:
		writePage(w, http.StatusBadRequest, pageBadRequest) // a malformed body
	case errors.As(err, &ne) && ne.Timeout():
		writePage(w, http.StatusGatewayTimeout, pageTimeout)
	case req.Context().Err() != nil:
		st.rw.status = 499 // the client went away (nginx's code)
	default:
		writePage(w, http.StatusBadGateway, pageBadGateway)
	}
	if st.rw.status >= 500 {
		r.log.Debug("proxy error", "app", st.app.route.Name, "instance", st.backend.addr, "request_id", st.reqID, "err", err)
	}
}

// redirectHTTPS sends a plain-HTTP request to the same URL over HTTPS: 301
// for GET and HEAD, 308 (method and body kept) for the rest.
func (r *Router) redirectHTTPS(w http.ResponseWriter, req *http.Request, host string) {
	target := "https://" + host
	if r.cfg.HTTPSPort != 443 {
		target += ":" + strconv.Itoa(r.cfg.HTTPSPort)
	}
	target += req.URL.RequestURI()
	code := http.StatusPermanentRedirect
	if req.Method == http.MethodGet || req.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	}
	http.Redirect(w, req, target, code) //nolint:gosec // to host, one of the app's own, over HTTPS
}
