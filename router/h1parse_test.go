package router

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

func TestH1Parse(t *testing.T) {
	const h = "Host: app.skiff.test\r\n"
	for _, tc := range []struct {
		in      string
		want    h1Verdict
		because string // the reason, for h1Bad and h1Unsure
	}{
		{"GET / HTTP/1.1\r\n" + h + "\r\n", h1OK, ""},
		{"GET /a/b?c=d&e=%2F+f HTTP/1.1\r\n" + h + "Accept: */*\r\n\r\n", h1OK, ""},
		{"POST /form HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc", h1OK, ""},
		{"GET / HTTP/1.1\r\n" + h, h1Need, ""},
		{"GET / HTT", h1Need, ""},
		{"GET / HTTP/1.1\r\n" + h + "\r", h1Need, ""},

		// RFC 9112's MUSTs and what it lets a server refuse.
		{"GET / HTTP/1.1\n" + h + "\r\n", h1Bad, "line ending in request line"},
		{"GET / HTTP/1.1\r\nHost: app.skiff.test\n\r\n", h1Bad, "line ending in field line"},
		{"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", h1Bad, "line ending in field line"},
		{"GET / HTTP/1.1\r\n" + h + "X-A: 1\r\n  2\r\n\r\n", h1Bad, "obs-fold"},
		{"GET / HTTP/1.1\r\n Host: app.skiff.test\r\n\r\n", h1Bad, "whitespace before the first field"},
		{"GET / HTTP/1.1\r\nHost : app.skiff.test\r\n\r\n", h1Bad, "field name"},
		{"GET / HTTP/1.1\r\n" + h + "X-A : 1\r\n\r\n", h1Bad, "field name"},
		{"GET / HTTP/1.1\r\n" + h + h + "\r\n", h1Bad, "host"},
		{"GET / HTTP/1.1\r\nX: 1\r\n\r\n", h1Bad, "host"},
		{"GET / HTTP/1.1\r\n" + h + "X: a\x00b\r\n\r\n", h1Bad, "field value"},
		{"GET / HTTP/1.1\r\n" + h + "X: a\x01b\r\n\r\n", h1Bad, "field value"},
		{"POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", h1Bad, "content-length with transfer-encoding"},
		{"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", h1Bad, "content-length with transfer-encoding"},
		{"POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", h1Bad, "content-length"},
		{"POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", h1Bad, "content-length"},
		{"POST / HTTP/1.1\r\n" + h + "Content-Length: 1,1\r\n\r\n", h1Bad, "content-length"},
		{"GET  / HTTP/1.1\r\n" + h + "\r\n", h1Bad, "request line"},
		{"GET / HTTP/1.1 \r\n" + h + "\r\n", h1Bad, "version"},
		{"GET / HTTP/11\r\n" + h + "\r\n", h1Bad, "version"},
		{"G(T / HTTP/1.1\r\n" + h + "\r\n", h1Bad, "method"},
		{"\r\nGET / HTTP/1.1\r\n" + h + "\r\n", h1Bad, "request line"},
		{"GET / HTTP/1.1\r\n" + h + "X-Big: " + strings.Repeat("a", 2000), h1Bad, "too large"},

		// For net/http.
		{"GET / HTTP/1.0\r\n" + h + "\r\n", h1Unsure, "version"},
		{"GET http://app.skiff.test/ HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "target form"},
		{"OPTIONS * HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "target form"},
		{"OPTIONS /x HTTP/1.1\r\n" + h + "\r\n", h1OK, ""},
		{"CONNECT a:443 HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "method"},
		{"GET /a\"b HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "target char"},
		{"GET /caf\xc3\xa9 HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "target char"},
		{"GET /%zz HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "target escape"},
		{"GET /?a=1;b=2 HTTP/1.1\r\n" + h + "\r\n", h1Unsure, "query semicolon"},
		{"GET / HTTP/1.1\r\n" + h + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", h1Unsure, "upgrade"},
		{"GET / HTTP/1.1\r\n" + h + "Upgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n", h1Unsure, "http2-settings"},
		{"POST / HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", h1Unsure, "expect"},
		{"POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n", h1Unsure, "transfer-encoding"},
		{"POST / HTTP/1.1\r\n" + h + "Content-Length: 100000\r\n\r\n", h1Unsure, "large body"},
		{"POST / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 1\r\n\r\n", h1Unsure, "repeated content-length"},
	} {
		var r h1Request
		got := r.parse([]byte(tc.in), 1024)
		if got != tc.want || (got == h1Bad || got == h1Unsure) && r.reason != tc.because {
			t.Errorf("%q: verdict %d (%s), want %d (%s)", tc.in, got, r.reason, tc.want, tc.because)
		}
	}
}

func TestH1ParseFields(t *testing.T) {
	in := "GET /x HTTP/1.1\r\nHost: App.Skiff.Test\r\nConnection: keep-alive, X-Secret, close\r\nX-Secret: s\r\nKeep-Alive: 5\r\n" +
		"TE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: mine\r\nAccept:  text/html \t\r\n\r\n"
	var r h1Request
	if v := r.parse([]byte(in), 1024); v != h1OK {
		t.Fatalf("verdict %d: %s", v, r.reason)
	}
	var kept []string
	for _, f := range r.fields {
		if !f.drop {
			kept = append(kept, string(f.name)+"="+string(f.value))
		}
	}
	if got := strings.Join(kept, " "); got != "Accept=text/html" {
		t.Errorf("forwarded fields %q", got)
	}
	if !r.close || !r.teTrailers || string(r.host) != "App.Skiff.Test" || r.headLen != len(in) {
		t.Errorf("close %v, TE trailers %v, host %q, head %d of %d", r.close, r.teTrailers, r.host, r.headLen, len(in))
	}
}

// h1StricterThanNetHTTP are the reasons for which the fast path refuses a
// head net/http's ReadRequest takes: each is a rule of RFC 9112 that
// net/http does not apply (or applies in its server, after ReadRequest).
var h1StricterThanNetHTTP = map[string]bool{
	"line ending in request line":           true, // bare LF (§2.2)
	"line ending in field line":             true,
	"obs-fold":                              true, // §5.2
	"field name":                            true, // whitespace before the colon (§5.1)
	"host":                                  true, // a missing Host: net/http's server refuses it after ReadRequest (§3.2)
	"content-length with transfer-encoding": true, // §6.1; net/http frames by TE
	"too large":                             true, // the test's small bound
}

// FuzzH1Parse checks the fast path's parser against net/http's on every
// input: what the fast path accepts, net/http reads the same way (method,
// target, Host, every field and its value, where the head ends, the body
// length); what it refuses, net/http refuses too, but for the rules above.
func FuzzH1Parse(f *testing.F) {
	const h = "Host: app.skiff.test\r\n"
	for _, s := range []string{
		"GET / HTTP/1.1\r\n" + h + "\r\n",
		"GET /a?b=c HTTP/1.1\r\n" + h + "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n",
		"POST /p HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"GET / HTTP/1.1\n" + h + "\n",
		"GET / HTTP/1.1\r\n" + h + "X: 1\r\n 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\n" + h + h + "\r\n",
		"GET /%41%2f HTTP/1.1\r\n" + h + "Connection: X-A\r\nX-A: 1\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r h1Request
		v := r.parse(in, 8<<10)
		br := bufio.NewReaderSize(bytes.NewReader(in), len(in)+16)
		req, err := http.ReadRequest(br)
		switch v {
		case h1OK:
			if err != nil {
				t.Fatalf("fast path took %q, net/http refuses it: %v", in, err)
			}
			if consumed := len(in) - br.Buffered(); consumed != r.headLen {
				t.Fatalf("%q: head of %d bytes, net/http read %d", in, r.headLen, consumed)
			}
			if req.Method != string(r.method) || req.RequestURI != string(r.target) || req.Host != string(r.host) {
				t.Fatalf("%q: %s %s host %q, net/http %s %s host %q", in, r.method, r.target, r.host, req.Method, req.RequestURI, req.Host)
			}
			if req.URL.RequestURI() != string(r.target) {
				t.Fatalf("%q: target %s, ReverseProxy would send %s", in, r.target, req.URL.RequestURI())
			}
			seen := map[string]int{}
			n := 0
			for _, fl := range r.fields {
				if fl.kind == fkHost {
					continue
				}
				n++
				k := textproto.CanonicalMIMEHeaderKey(string(fl.name))
				vals := req.Header[k]
				if i := seen[k]; i >= len(vals) || vals[i] != string(fl.value) {
					t.Fatalf("%q: field %s=%q, net/http has %q", in, k, fl.value, vals)
				}
				seen[k]++
			}
			total := 0
			for _, vals := range req.Header {
				total += len(vals)
			}
			if total != n {
				t.Fatalf("%q: %d fields, net/http %d", in, n, total)
			}
			if want := max(r.contentLength, 0); req.ContentLength != want {
				t.Fatalf("%q: body of %d, net/http %d", in, want, req.ContentLength)
			}
		case h1Bad:
			if err == nil && !h1StricterThanNetHTTP[r.reason] {
				t.Fatalf("fast path refuses %q (%s), net/http takes it", in, r.reason)
			}
		}
	})
}
