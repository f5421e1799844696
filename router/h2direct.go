package router

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

// serveDirect proxies a bodiless GET or HEAD that came over HTTP/2 the way
// the fast path proxies HTTP/1.1 (exchange.go), without ReverseProxy:
// measured under callgrind, ReverseProxy and http.ReadResponse cost about
// as much per small request as Go's HTTP/2 server itself (header maps
// cloned and canonicalized again and again). It reports false, having
// done nothing, for what ReverseProxy must serve: request bodies, upgrades,
// queries ReverseProxy would re-encode, and HTTP/1 (whose Connection field
// can name more hop-by-hop fields; HTTP/2 has none, h2guard.go).
func (r *Router) serveDirect(rw *respWriter, req *http.Request, st *reqState) bool {
	// (An HTTP/2 request whose HEADERS ended the stream has length 0;
	// its Body is never nil.)
	if req.ProtoMajor != 2 || req.Method != http.MethodGet && req.Method != http.MethodHead || req.ContentLength != 0 {
		return false
	}
	uri := req.URL.RequestURI()
	if checkTarget(uri) != "" {
		return false
	}
	call := directCalls.Get().(*directCall)
	defer directCalls.Put(call)
	x := &call.x
	*x = upstreamCall{app: st.app, backend: st.backend, resp: &call.resp, isHead: req.Method == http.MethodHead,
		replayable: true, sent: st.start, ctx: req.Context()}
	call.req = directHead(call.req[:0], uri, req, st)
	x.req = call.req
	dc, err := r.roundTrip(x)
	st.backend = x.backend
	switch {
	case err == errClientGone:
		st.rw.status = 499 // the client went away (nginx's code)
		return true
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			writePage(rw, http.StatusGatewayTimeout, pageTimeout)
		} else {
			writePage(rw, http.StatusBadGateway, pageBadGateway)
			r.log.Debug("proxy error", "app", st.app.route.Name, "instance", st.backend.addr, "request_id", st.reqID, "err", err)
		}
		return true
	}

	resp := x.resp
	compress := st.coding != identity && !resp.bodyless && compressibleResponse(resp.status, x.isHead,
		len(resp.get(rkContentEncoding)) > 0, len(resp.get(rkContentRange)) > 0, resp.contentLength,
		bstr(resp.get(rkCacheControl)), bstr(resp.get(rkContentType)))
	h := rw.Header()
	for i := range resp.fields {
		f := &resp.fields[i]
		switch resp.kinds[i] {
		case rkConnection, rkHop, rkTransferEncoding, rkTrailer:
			continue
		case rkContentLength:
			if !resp.bodyless {
				continue // below, for the framing chosen
			}
		case rkETag:
			if compress && !bytes.HasPrefix(f.value, []byte("W/")) {
				h["Etag"] = append(h["Etag"], "W/"+string(f.value))
				continue
			}
		}
		k := fieldName(f.name)
		h[k] = append(h[k], string(f.value))
	}
	resp.consume(dc.br)
	if st.hsts && !resp.has(rkHSTS) {
		h["Strict-Transport-Security"] = []string{"max-age=31536000"}
	}
	switch {
	case resp.bodyless:
	case compress:
		h["Content-Encoding"] = []string{st.coding.String()}
		h["Vary"] = append(h["Vary"], "Accept-Encoding")
		rw.compress = st.coding
	case resp.contentLength >= 0:
		h["Content-Length"] = []string{strconv.FormatInt(resp.contentLength, 10)}
	}
	rw.WriteHeader(resp.status)
	complete, ok, trailer := relayBody(dc, resp, directSink{rw})
	r.finishCall(x, dc, complete)
	if !complete || !ok {
		// As ReverseProxy does: the client must not take a cut body for
		// a whole one (HTTP/2 resets the stream).
		panic(http.ErrAbortHandler)
	}
	for len(trailer) > 0 {
		var line []byte
		line, trailer = cutLine(trailer)
		if name, value, found := bytes.Cut(line, []byte(":")); found {
			k := http.TrailerPrefix + fieldName(name)
			h[k] = append(h[k], string(trimOWS(value)))
		}
	}
	return true
}

// directCall is one serveDirect's reusable state.
type directCall struct {
	x    upstreamCall
	resp h1Response
	req  []byte
}

var directCalls = sync.Pool{New: func() any { return new(directCall) }}

// directHead is the request to the app: the client's fields but the
// hop-by-hop ones and those the router sets itself (the keys of an HTTP/2
// request's Header are canonical), then the router's.
func directHead(b []byte, uri string, req *http.Request, st *reqState) []byte {
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, req.Host...)
	b = append(b, "\r\n"...)
	for k, vv := range req.Header {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"Proxy-Authenticate", "Proxy-Authorization", "Content-Length", "Host",
			"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "Forwarded",
			"X-Real-Ip", "X-Request-Id", "X-Request-Start":
			continue
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	for _, v := range req.Header["Te"] {
		if strings.Contains(strings.ToLower(v), "trailers") {
			b = append(b, "Te: trailers\r\n"...)
			break
		}
	}
	return appendForwarded(b, forwarded{clientIP: st.clientIP, chain: st.xff}, st.proto, req.Host, st.port, st.reqID, st.start)
}

// directSink writes a relayed body to a ResponseWriter (respWriter
// compresses and counts).
type directSink struct{ rw *respWriter }

func (s directSink) write(p []byte) error {
	_, err := s.rw.Write(p)
	return err
}

func (s directSink) flush() error {
	s.rw.Flush()
	return nil
}

// fieldName is the canonical form of a field name from an app, for a
// Header map (HTTP/2's writer looks up Content-Length and the like by
// it); the common ones without an allocation.
func fieldName(b []byte) string {
	if s, ok := commonFieldNames[string(b)]; ok {
		return s
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

var commonFieldNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Range", "Content-Security-Policy", "Content-Type",
		"Date", "Etag", "Expires", "Last-Modified", "Link", "Location", "Pragma", "Referrer-Policy", "Retry-After", "Server",
		"Set-Cookie", "Strict-Transport-Security", "Vary", "Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options",
		"X-Powered-By", "X-Request-Id", "X-Xss-Protection"} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	m["ETag"] = "Etag"
	m["WWW-Authenticate"] = "Www-Authenticate"
	return m
}()
