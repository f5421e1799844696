package router

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/skiffhq/skiff"
)

// The fast path's request handling: the same decisions as ServeHTTP
// (proxy.go) for the requests it serves, the rest handed over before any
// byte is answered.

type fastOutcome uint8

const (
	keepGoing fastOutcome = iota
	handOver              // net/http answers this request (and the rest)
	closeConn
)

var acmePrefix = []byte("/.well-known/acme-challenge/")

var errReparse = errors.New("request head changed")

// fastReq is one request on the fast path.
type fastReq struct {
	app     *app
	backend *backend
	host    string // canonical
	start   time.Time
	id      [32]byte // X-Request-Id
	fw      forwarded
	proto   string
	port    string
	coding  coding
	hsts    bool
	body    []byte // a Content-Length body, read whole; nil: none
	status  int
	bytes   int64
}

func (c *fastConn) serveRequest() fastOutcome {
	r := c.s.r
	req := &c.req
	// (host may point into the read buffer: it is used during this
	// request only.)
	host, ok := skiff.CanonicalHost(bstr(req.host))
	if !ok {
		c.writePage(http.StatusBadRequest, pageBadRequest, true)
		return closeConn
	}
	if c.tlsState == nil && r.acme != nil && bytes.HasPrefix(req.target, acmePrefix) {
		return handOver
	}
	a := r.table.Load().lookup(host)
	if a == nil {
		// Like the pages below: the answer is the router's, and a body
		// that was not read ends the connection.
		closing := req.close || req.contentLength > 0
		c.rd += req.headLen
		c.writePage(http.StatusNotFound, pageNotFound, closing)
		return outcome(closing)
	}
	fr := &c.fr // reused: nothing of a request outlives it
	*fr = fastReq{app: a, host: host, start: time.Now()}
	fr.fw = r.forwardedFromFields(c.peer, req.fields)
	if c.tlsState != nil {
		if sni := c.tlsState.ServerName; sni != "" && sni != host && !r.misdirectedOK(sni, host) {
			return handOver // 421
		}
	} else if !a.route.NoRedirect && fr.fw.proto != "https" && r.hasCertFor(a, host) {
		return handOver // the redirect to HTTPS
	}
	if a.route.Maintenance || a.maxBody > 0 && req.contentLength > a.maxBody {
		return handOver // 503, 413
	}
	b := a.state.pool.Load().pick(nil)
	if b == nil {
		return handOver // 503
	}
	c.requestID(&fr.id)
	if req.contentLength > 0 {
		if err := c.readBody(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				fr.status = http.StatusRequestTimeout
				c.writePage(http.StatusRequestTimeout, pageBodyTimeout, true)
				r.logFast(c, fr)
			}
			return closeConn
		}
		fr.body = c.buf[c.rd+req.headLen : c.rd+req.headLen+int(req.contentLength)]
	}

	fr.proto = "http"
	if c.tlsState != nil {
		fr.proto = "https"
	}
	fr.port = c.s.localPort(c.raw)
	if fr.fw.proto != "" {
		fr.proto = fr.fw.proto
	}
	if fr.fw.port != "" {
		fr.port = fr.fw.port
	}
	fr.hsts = (c.tlsState != nil || fr.fw.proto == "https") && a.route.HSTS
	var n negotiation
	for i := range req.fields {
		if req.fields[i].kind == fkAcceptEncoding {
			n.add(bstr(req.fields[i].value))
		}
	}
	fr.coding = n.result()

	b.inflight.Add(1)
	fr.backend = b
	keep := c.proxy(fr)
	fr.backend.inflight.Add(-1)
	c.rd += req.headLen + int(max(req.contentLength, 0))
	r.logFast(c, fr)
	c.shrink()
	if !keep || req.close {
		return closeConn
	}
	return keepGoing
}

func outcome(closing bool) fastOutcome {
	if closing {
		return closeConn
	}
	return keepGoing
}

// readBody makes buf[rd:] hold the head and the whole Content-Length body.
// Each read must make progress within the body idle timeout.
func (c *fastConn) readBody() error {
	need := c.req.headLen + int(c.req.contentLength)
	if c.wr-c.rd >= need {
		return nil
	}
	if len(c.buf)-c.rd < need {
		// The request's strings (its host, say) point into the old
		// buffer: it is kept until the request is done (shrink).
		c.held = c.buf
		c.buf = make([]byte, max(need, 2*len(c.buf)))
		c.wr = copy(c.buf, c.held[c.rd:c.wr])
		c.rd = 0
	}
	for c.wr-c.rd < need {
		c.c.SetReadDeadline(time.Now().Add(c.s.r.cfg.BodyIdleTimeout))
		c.idleDL.forget()
		if err := c.fill(len(c.buf)); err != nil {
			return err
		}
	}
	// The head moved with the buffer: read it again where it is now.
	if v := c.req.parse(c.buf[c.rd:c.wr], len(c.buf)); v != h1OK {
		return errReparse // cannot happen: the same bytes parsed before
	}
	return nil
}

// proxy sends the request to the app and its answer to the client. It
// reports whether the client connection can serve another request.
func (c *fastConn) proxy(fr *fastReq) bool {
	req := &c.req
	x := upstreamCall{app: fr.app, backend: fr.backend, resp: &c.resp, fc: c,
		isHead: string(req.method) == http.MethodHead, sent: fr.start}
	// Methods net/http's Transport sends twice when a kept-alive
	// connection turns out closed.
	x.replayable = x.isHead || string(req.method) == http.MethodGet || string(req.method) == http.MethodOptions
	if fr.body != nil {
		x.sent = time.Now() // the first-byte timeout runs from when the request goes out
	}
	c.scratch = c.upstreamHead(c.scratch[:0], fr)
	x.req = c.scratch
	dc, err := c.s.r.roundTrip(&x)
	fr.backend = x.backend
	switch {
	case err == errClientGone:
		fr.status = 499 // the client went away (nginx's code)
		return false
	case err != nil:
		return c.fail(fr, err)
	}
	return c.respond(fr, &x, dc)
}

// fail answers a request the app did not: 504 when it sent nothing in
// time, 502 otherwise. The client connection stays usable.
func (c *fastConn) fail(fr *fastReq, err error) bool {
	var ne net.Error
	code, page := http.StatusBadGateway, pageBadGateway
	if errors.As(err, &ne) && ne.Timeout() {
		code, page = http.StatusGatewayTimeout, pageTimeout
	} else {
		c.s.r.log.Debug("proxy error", "app", fr.app.route.Name, "instance", fr.backend.addr, "err", err)
	}
	fr.status, fr.bytes = code, int64(len(page))
	c.writePage(code, page, c.req.close)
	return true
}

// upstreamHead is the request to the app: the client's fields but the
// hop-by-hop ones and those the router sets itself, then the router's,
// then the body; appended to b, to go out in one write.
func (c *fastConn) upstreamHead(b []byte, fr *fastReq) []byte {
	req := &c.req
	b = append(b, req.method...)
	b = append(b, ' ')
	b = append(b, req.target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, req.host...)
	b = append(b, "\r\n"...)
	for i := range req.fields {
		f := &req.fields[i]
		if f.drop {
			continue
		}
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if req.teTrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	if req.contentLength >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.contentLength, 10)
		b = append(b, "\r\n"...)
	}
	b = appendForwarded(b, fr.fw, fr.proto, req.host, fr.port, fr.id[:], fr.start)
	return append(b, fr.body...)
}

// respond writes the app's response to the client and returns the
// upstream connection to the pool when it is done with cleanly.
func (c *fastConn) respond(fr *fastReq, x *upstreamCall, dc *directConn) bool {
	resp, isHead := &c.resp, x.isHead
	fr.status = resp.status
	compress := fr.coding != identity && !resp.bodyless && compressibleResponse(resp.status, isHead,
		len(resp.get(rkContentEncoding)) > 0, len(resp.get(rkContentRange)) > 0, resp.contentLength,
		bstr(resp.get(rkCacheControl)), bstr(resp.get(rkContentType)))
	closing := c.req.close || c.s.closing.Load()
	h := append(c.scratch[:0], statusLine(resp.status)...)
	for i := range resp.fields {
		f := &resp.fields[i]
		switch resp.kinds[i] {
		case rkConnection, rkHop, rkTransferEncoding:
			continue
		case rkContentLength:
			if !resp.bodyless {
				continue // written below, for the framing chosen
			}
		case rkTrailer:
			if !resp.chunked {
				continue
			}
		case rkETag:
			if compress && !bytes.HasPrefix(f.value, []byte("W/")) {
				h = append(h, "Etag: W/"...)
				h = append(h, f.value...)
				h = append(h, "\r\n"...)
				continue
			}
		}
		h = append(h, f.name...)
		h = append(h, ": "...)
		h = append(h, f.value...)
		h = append(h, "\r\n"...)
	}
	if !resp.has(rkDate) {
		h = append(h, "Date: "...)
		h = append(h, httpDate(fr.start)...)
		h = append(h, "\r\n"...)
	}
	if fr.hsts && !resp.has(rkHSTS) {
		h = append(h, "Strict-Transport-Security: max-age=31536000\r\n"...)
	}
	chunked := false
	switch {
	case resp.bodyless:
	case compress:
		h = append(h, "Content-Encoding: "...)
		h = append(h, fr.coding.String()...)
		h = append(h, "\r\nVary: Accept-Encoding\r\nTransfer-Encoding: chunked\r\n"...)
		chunked = true
	case resp.contentLength >= 0:
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, resp.contentLength, 10)
		h = append(h, "\r\n"...)
	default:
		h = append(h, "Transfer-Encoding: chunked\r\n"...)
		chunked = true
	}
	if closing {
		h = append(h, "Connection: close\r\n"...)
	}
	h = append(h, "\r\n"...)
	c.scratch = h
	resp.consume(dc.br)
	w := c.writer()
	w.Write(h)

	out := &c.body
	*out = clientBody{w: w, chunked: chunked, coding: fr.coding}
	if compress {
		out.enc = getEncoder(fr.coding, &out.chunks)
		out.chunks.w, out.chunks.n = w, &out.n
	}
	complete, clientOK, trailer := relayBody(dc, resp, out)
	out.trailer = trailer
	if complete {
		clientOK = out.end(resp, chunked) && clientOK
	} else if out.enc != nil {
		putEncoder(fr.coding, out.enc)
	}
	fr.bytes = out.n
	c.s.r.finishCall(x, dc, complete)
	if !complete {
		return false // the client must not take a cut body for a whole one
	}
	if clientOK && !closing {
		_ = c.out.Flush() // a client that went away fails the next read of the kept-alive conn
		c.releaseWriter()
		return true
	}
	_ = c.out.Flush() // the connection closes next
	return false
}

// clientBody writes a response body to the client in the framing chosen:
// as it comes, in chunks, or compressed into chunks.
type clientBody struct {
	w       *bufio.Writer
	chunked bool
	coding  coding
	enc     encoder
	chunks  chunkWriter // the encoder's output
	n       int64       // body bytes sent (compressed when compressing)
	trailer []byte
}

func (b *clientBody) write(p []byte) error {
	if b.enc != nil {
		_, err := b.enc.Write(p)
		return err
	}
	if b.chunked {
		b.chunks.w, b.chunks.n = b.w, &b.n
		_, err := b.chunks.Write(p)
		return err
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	return err
}

func (b *clientBody) flush() error {
	if b.enc != nil {
		if err := b.enc.Flush(); err != nil {
			return err
		}
	}
	return b.w.Flush()
}

// end finishes the body: the compressed stream's end, the last chunk and
// the app's trailer fields.
func (b *clientBody) end(resp *h1Response, chunked bool) bool {
	if b.enc != nil {
		err := b.enc.Close()
		putEncoder(b.coding, b.enc)
		b.enc = nil
		if err != nil {
			return false
		}
	}
	if chunked {
		b.w.WriteString("0\r\n")
		b.w.Write(b.trailer)
		b.w.WriteString("\r\n")
	}
	return true
}

// chunkWriter frames each write as one chunk.
type chunkWriter struct {
	w *bufio.Writer
	n *int64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hexLen [16]byte
	c.w.Write(strconv.AppendUint(hexLen[:0], uint64(len(p)), 16))
	c.w.WriteString("\r\n")
	c.w.Write(p)
	_, err := c.w.WriteString("\r\n")
	*c.n += int64(len(p))
	return len(p), err
}

// writePage answers with one of the router's pages.
func (c *fastConn) writePage(code int, body []byte, closing bool) {
	w := c.writer()
	w.WriteString(statusLine(code))
	w.WriteString("Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ")
	var num [20]byte
	w.Write(strconv.AppendInt(num[:0], int64(len(body)), 10))
	w.WriteString("\r\nDate: ")
	w.Write(httpDate(time.Now()))
	if closing {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	_ = w.Flush() // to a client that may have gone
	if !closing {
		c.releaseWriter()
	}
}

// writer is the connection's buffered writer, taken from a pool while a
// response is written: an idle connection holds none.
func (c *fastConn) writer() *bufio.Writer {
	if c.out == nil {
		c.out = writers.Get().(*bufio.Writer)
		c.out.Reset(c.c)
	}
	return c.out
}

func (c *fastConn) releaseWriter() {
	if c.out != nil && c.out.Buffered() == 0 {
		c.out.Reset(nil)
		writers.Put(c.out)
		c.out = nil
	}
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// statusLine is "HTTP/1.1 <code> <text>\r\n", made once per code.
func statusLine(code int) string {
	if code >= 100 && code < 600 {
		if s := statusLines[code-100].Load(); s != nil {
			return *s
		}
	}
	s := "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
	if code >= 100 && code < 600 {
		statusLines[code-100].Store(&s)
	}
	return s
}

var statusLines [500]atomic.Pointer[string]

// httpDate is the Date field value for now, remade once a second.
func httpDate(now time.Time) []byte {
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &cachedDate{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return d.b
}

type cachedDate struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[cachedDate]

// requestID writes 32 random hex digits (128 bits from crypto/rand, taken
// 16 requests' worth at a time).
func (c *fastConn) requestID(id *[32]byte) {
	if c.randLeft < 16 {
		rand.Read(c.rand[:])
		c.randLeft = len(c.rand)
	}
	hex.Encode(id[:], c.rand[len(c.rand)-c.randLeft:][:16])
	c.randLeft -= 16
}

// bstr is b as a string without a copy, for a call that only reads it
// while b's bytes stay put (the read buffer, during a request).
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) } //nolint:gosec // for lookups of bytes that are not changed while the string lives

// forwardedFromFields is forwardedFor (forwarded.go) over the request's
// fields: the chain a trusted proxy sent, else just the peer.
func (r *Router) forwardedFromFields(peer string, fields []h1Field) forwarded {
	if !r.trusted(peer) {
		return forwarded{clientIP: peer, chain: peer}
	}
	h := http.Header{}
	for i := range fields {
		switch fields[i].kind {
		case fkForwardedFor:
			h.Add("X-Forwarded-For", string(fields[i].value))
		case fkForwardedProto:
			h.Add("X-Forwarded-Proto", string(fields[i].value))
		case fkForwardedPort:
			h.Add("X-Forwarded-Port", string(fields[i].value))
		}
	}
	return r.forwardedFor(&http.Request{Header: h}, peer)
}

// logFast writes the access log line of a fast-path request.
func (r *Router) logFast(c *fastConn, fr *fastReq) {
	// writeLog copies what it is given into the line at once. Every
	// string here is plain JSON (a token, a checked target, a canonical
	// host, addresses).
	e := logEntry{plain: true, start: fr.start, app: fr.app, host: fr.host, method: bstr(c.req.method), uri: bstr(c.req.target),
		status: fr.status, bytes: fr.bytes, id: bstr(fr.id[:]), client: fr.fw.clientIP, proto: "HTTP/1.1", tls: c.tlsState != nil}
	if fr.backend != nil {
		e.instance = fr.backend.addr
	}
	r.writeLog(&e)
}
