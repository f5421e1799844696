package router

import "bytes"

// The fast path's request parser (h1fast.go serves what it accepts). It is
// the most attacked surface of the router, so it is strict where RFC 9112
// lets a server be, and it hands everything it is not sure of to net/http:
//
//   - lines end in CRLF: a bare LF or CR is 400 (net/http takes bare LF);
//   - no obs-fold and no whitespace before the first field line (400;
//     net/http joins folded lines);
//   - a field name is a token right before the colon: "Host : x" is 400
//     (net/http takes "Host " for a field name);
//   - one Host, always (400 otherwise, as net/http's server);
//   - field values hold no control characters but HTAB (400);
//   - Content-Length and Transfer-Encoding together are 400 and the
//     connection closes (RFC 9112 §6.1), as on the net/http path;
//   - the whole head is checked before it is handed on, so every request
//     that reaches the router's first byte checks meets these rules.
//
// It accepts for the fast path only HTTP/1.1 requests in origin form whose
// target is plain (pchar, valid %-escapes; a query without ";", which
// ReverseProxy would re-encode), with no body or a Content-Length one, and
// none of Upgrade, Expect, HTTP2-Settings or Transfer-Encoding. The rest
// (HTTP/1.0, absolute form, OPTIONS *, chunked bodies, upgrades …) is
// h1Unsure: net/http serves it, its own checks intact.

type h1Verdict uint8

const (
	h1Need   h1Verdict = iota // the head is not complete yet
	h1OK                      // the fast path serves it
	h1Unsure                  // net/http serves it
	h1Bad                     // 400 (or 431), and the connection closes
)

// fieldKind tells apart the request fields the router looks at.
type fieldKind uint8

const (
	fkOther fieldKind = iota
	fkHost
	fkContentLength
	fkTransferEncoding
	fkConnection
	fkHop // a hop-by-hop field, never forwarded (Keep-Alive, TE, …)
	fkTE
	fkUpgrade
	fkExpect
	fkHTTP2Settings
	fkForwardedFor
	fkForwardedProto
	fkForwardedPort
	fkOurs // set by the router itself: the client's never passes
	fkAcceptEncoding
)

// h1Field is one field line; name and value point into the read buffer.
type h1Field struct {
	name, value []byte // value without leading and trailing whitespace
	kind        fieldKind
	drop        bool // not forwarded (hop-by-hop, named by Connection, or ours)
}

// h1Request is a parsed request head. Its slices point into the
// connection's read buffer: valid until the buffer is reused.
type h1Request struct {
	method, target []byte
	fields         []h1Field
	host           []byte
	headLen        int   // bytes of the head, final CRLF included
	contentLength  int64 // -1: none
	close          bool  // Connection: close
	connTokens     bool  // Connection names more than close or keep-alive
	teTrailers     bool  // TE names trailers (forwarded as "TE: trailers")
	reason         string
}

func (r *h1Request) reset() {
	fields := r.fields[:0]
	*r = h1Request{fields: fields, contentLength: -1}
}

// Character classes (RFC 9110 §5.6.2, RFC 3986 §3.3).
const (
	cToken  = 1 << iota // tchar
	cValue              // field-vchar, SP, HTAB
	cTarget             // pchar and "/" "?", without "%" (checked apart)
)

var h1Class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		isAlnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if isAlnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), byte(c)) >= 0 {
			t[c] |= cToken
		}
		if c == '\t' || c >= 0x20 && c != 0x7f {
			t[c] |= cValue
		}
		if isAlnum || bytes.IndexByte([]byte("-._~!$&'()*+,;=:@/?"), byte(c)) >= 0 {
			t[c] |= cTarget
		}
	}
	return t
}()

// maxFastBody is the largest request body the fast path reads itself (it
// reads it whole before the app sees any of it, so that a refused
// connection can be retried); larger bodies stream through net/http.
const maxFastBody = 64 << 10

// parse reads the request head at the start of buf. maxHead bounds the
// head: beyond it, with no end in sight, the verdict is h1Bad with reason
// "too large" (431).
func (r *h1Request) parse(buf []byte, maxHead int) h1Verdict {
	r.reset()
	unsure := ""
	line, rest, v := nextLine(buf)
	if v != h1OK {
		return r.need(v, len(buf), maxHead, "request line")
	}
	// method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return r.bad("request line")
	}
	r.method = line[:sp1]
	for _, c := range r.method {
		if h1Class[c]&cToken == 0 {
			return r.bad("method")
		}
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return r.bad("request line")
	}
	r.target = line[sp1+1 : sp1+1+sp2]
	version := line[sp1+2+sp2:]
	switch {
	case string(version) == "HTTP/1.1":
	case len(version) == 8 && string(version[:5]) == "HTTP/" && version[6] == '.' && isDigit(version[5]) && isDigit(version[7]):
		unsure = "version"
	default:
		return r.bad("version")
	}
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return r.bad("target") // (a SP would have split the line)
		}
	}
	if unsure == "" {
		unsure = checkMethod(r.method)
	}
	if unsure == "" {
		unsure = checkTarget(r.target)
	}

	hosts := 0
	te := false
	for first := true; ; first = false {
		line, rest, v = nextLine(rest)
		if v != h1OK {
			return r.need(v, len(buf), maxHead, "field line")
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return r.bad("whitespace before the first field")
			}
			return r.bad("obs-fold")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r.bad("field line")
		}
		name := line[:colon]
		for _, c := range name {
			if h1Class[c]&cToken == 0 {
				return r.bad("field name") // whitespace before the colon among them
			}
		}
		value := line[colon+1:]
		for _, c := range value {
			if h1Class[c]&cValue == 0 {
				return r.bad("field value")
			}
		}
		value = trimOWS(value)
		f := h1Field{name: name, value: value, kind: classify(name)}
		switch f.kind {
		case fkHost:
			hosts++
			r.host = value
			f.drop = true // written first, from r.host
		case fkContentLength:
			n, ok := parseLength(value)
			if !ok || r.contentLength >= 0 && uint64(r.contentLength) != n {
				return r.bad("content-length")
			}
			if r.contentLength >= 0 {
				unsure = "repeated content-length"
			}
			r.contentLength = int64(n) //nolint:gosec // parseLength takes at most 18 digits
			f.drop = true              // the router writes its own
		case fkTransferEncoding:
			te = true
			f.drop = true
		case fkConnection:
			f.drop = true
			switch {
			case asciiEqualFold(value, "close"):
				r.close = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				r.connTokens = true
				if tokenListHas(value, "close") {
					r.close = true
				}
				if tokenListHas(value, "upgrade") {
					unsure = "upgrade"
				}
			}
		case fkTE:
			f.drop = true
			r.teTrailers = r.teTrailers || tokenListHas(value, "trailers")
		case fkUpgrade:
			unsure = "upgrade"
		case fkExpect:
			unsure = "expect"
		case fkHTTP2Settings:
			unsure = "http2-settings"
		case fkHop, fkOurs:
			f.drop = true
		case fkForwardedFor, fkForwardedProto, fkForwardedPort:
			f.drop = true // read from a trusted proxy, then replaced
		}
		r.fields = append(r.fields, f)
	}
	r.headLen = len(buf) - len(rest)
	if te && r.contentLength >= 0 {
		return r.bad("content-length with transfer-encoding")
	}
	if hosts != 1 {
		return r.bad("host")
	}
	// Fields the client's Connection names are hop-by-hop too.
	for i := range r.fields {
		if !r.connTokens || r.fields[i].kind != fkConnection {
			continue
		}
		for tok := range tokens(r.fields[i].value) {
			for j := range r.fields {
				if r.fields[j].kind != fkHost && asciiEqualFoldBytes(r.fields[j].name, tok) {
					r.fields[j].drop = true
				}
			}
		}
	}
	switch {
	case unsure != "":
	case te:
		unsure = "transfer-encoding"
	case r.contentLength > maxFastBody:
		unsure = "large body"
	}
	if unsure != "" {
		r.reason = unsure
		return h1Unsure
	}
	return h1OK
}

func (r *h1Request) bad(reason string) h1Verdict {
	r.reason = reason
	return h1Bad
}

// need turns an incomplete line into h1Need, or h1Bad past maxHead.
func (r *h1Request) need(v h1Verdict, n, maxHead int, what string) h1Verdict {
	if v == h1Bad {
		return r.bad("line ending in " + what)
	}
	if n > maxHead {
		return r.bad("too large")
	}
	return h1Need
}

// nextLine splits off the first CRLF-terminated line of b. A bare LF, or
// a CR that does not end a line, is h1Bad; no LF yet is h1Need.
func nextLine(b []byte) (line, rest []byte, v h1Verdict) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if bytes.IndexByte(b, '\r') >= 0 && b[len(b)-1] != '\r' {
			return nil, nil, h1Bad
		}
		return nil, nil, h1Need
	}
	if i == 0 || b[i-1] != '\r' || bytes.IndexByte(b[:i-1], '\r') >= 0 {
		return nil, nil, h1Bad
	}
	return b[:i-1], b[i+1:], h1OK
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// checkMethod: the fast path forwards the methods of everyday traffic.
func checkMethod(m []byte) string {
	switch string(m) {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return ""
	}
	return "method"
}

// checkTarget accepts origin-form targets that net/http and ReverseProxy
// pass on unchanged: pchar and "/" in the path, query chars, valid
// %-escapes, no ";" in the query.
func checkTarget[S string | []byte](t S) string {
	if len(t) == 0 || t[0] != '/' {
		return "target form"
	}
	query := false
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return "target escape"
			}
			i += 2
		case h1Class[c]&cTarget == 0:
			return "target char"
		case c == '?':
			query = true
		case c == ';' && query:
			return "query semicolon"
		}
	}
	return ""
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tokens yields the elements of a comma-separated list, trimmed.
func tokens(v []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(v) > 0 {
			var tok []byte
			tok, v, _ = bytes.Cut(v, []byte(","))
			if tok = trimOWS(tok); len(tok) > 0 && !yield(tok) {
				return
			}
		}
	}
}

func tokenListHas(v []byte, want string) bool {
	for tok := range tokens(v) {
		if asciiEqualFold(tok, want) {
			return true
		}
	}
	return false
}

// asciiEqualFoldBytes compares two ASCII strings without regard to case.
func asciiEqualFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// classify names the fields the router treats specially (case-insensitive).
func classify(name []byte) fieldKind {
	switch len(name) {
	case 2:
		if asciiEqualFold(name, "te") {
			return fkTE
		}
	case 4:
		if asciiEqualFold(name, "host") {
			return fkHost
		}
	case 6:
		if asciiEqualFold(name, "expect") {
			return fkExpect
		}
	case 7:
		switch {
		case asciiEqualFold(name, "upgrade"):
			return fkUpgrade
		case asciiEqualFold(name, "trailer"):
			return fkHop
		}
	case 9:
		if asciiEqualFold(name, "forwarded") || asciiEqualFold(name, "x-real-ip") {
			return fkOurs
		}
	case 10:
		switch {
		case asciiEqualFold(name, "connection"):
			return fkConnection
		case asciiEqualFold(name, "keep-alive"):
			return fkHop
		}
	case 12:
		if asciiEqualFold(name, "x-request-id") {
			return fkOurs
		}
	case 14:
		if asciiEqualFold(name, "content-length") {
			return fkContentLength
		}
		if asciiEqualFold(name, "http2-settings") {
			return fkHTTP2Settings
		}
	case 15:
		switch {
		case asciiEqualFold(name, "x-forwarded-for"):
			return fkForwardedFor
		case asciiEqualFold(name, "accept-encoding"):
			return fkAcceptEncoding
		case asciiEqualFold(name, "x-request-start"):
			return fkOurs
		}
	case 16:
		switch {
		case asciiEqualFold(name, "x-forwarded-host"):
			return fkOurs
		case asciiEqualFold(name, "x-forwarded-port"):
			return fkForwardedPort
		case asciiEqualFold(name, "proxy-connection"):
			return fkHop
		}
	case 17:
		switch {
		case asciiEqualFold(name, "transfer-encoding"):
			return fkTransferEncoding
		case asciiEqualFold(name, "x-forwarded-proto"):
			return fkForwardedProto
		}
	case 18:
		if asciiEqualFold(name, "proxy-authenticate") {
			return fkHop
		}
	case 19:
		if asciiEqualFold(name, "proxy-authorization") {
			return fkHop
		}
	}
	return fkOther
}
