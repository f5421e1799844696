package router

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/skiffhq/skiff"
)

// wsEcho accepts a websocket upgrade and echoes the raw stream back.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	c, brw := wsAccept(w, r)
	if c == nil {
		return
	}
	defer c.Close()
	io.Copy(c, brw)
}

// wsAccept answers a websocket upgrade (101) and returns the app's side of
// the connection; nil when r asks for none or the hijack fails.
func wsAccept(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.ReadWriter) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return nil, nil
	}
	h := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n")
	brw.Flush()
	return c, brw
}

// dialWS opens an upgraded connection through the router.
func dialWS(t *testing.T, addr, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return upgradeWS(t, c, host)
}

// upgradeWS asks for a websocket on c.
func upgradeWS(t *testing.T, c net.Conn, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	return c, br
}

func TestWebsocket(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app", DrainTimeout: 200 * time.Millisecond}, startBackend(t, wsEcho))
	c, br := dialWS(t, tr.addr, "app.skiff.test")
	defer c.Close()
	for _, msg := range []string{"hello\n", "again\n"} {
		io.WriteString(c, msg)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if got, err := br.ReadString('\n'); err != nil || got != msg {
			t.Fatalf("echo %q: %q, %v", msg, got, err)
		}
	}
	// A deploy drains the websocket: open through the grace, closed after.
	done := make(chan error)
	next := startBackend(t, wsEcho)
	go func() { done <- tr.Deploy(context.Background(), "id-app", []string{next.addr}) }()
	waitFor(t, 5*time.Second, "the switch", func() bool {
		return tr.lookupID("id-app").state.pool.Load().backends[0].addr == next.addr
	})
	io.WriteString(c, "during\n")
	if got, err := br.ReadString('\n'); err != nil || got != "during\n" {
		t.Fatalf("websocket during the drain grace: %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	rest, err := io.ReadAll(br)
	if isTimeout(err) {
		t.Fatalf("websocket on the old instance still open after the grace: %v", err)
	}
	if string(rest) != "\x88\x02\x03\xe9" {
		t.Errorf("after the grace the client got %q, want a close frame with 1001", rest)
	}
}

// An app that ends a websocket (closes its connection, as RFC 6455 has the
// server do after the closing handshake) ends it for the client too: the
// router passes the end on at once rather than waiting for the client to
// hang up first. The same over HTTPS.
func TestWebsocketEndedByTheApp(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	cert, key := ca.issue(t, "app.skiff.test")
	tr.addApp(t, skiff.AppRoute{Name: "app", NoRedirect: true}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		c, brw := wsAccept(w, r)
		if c == nil {
			return
		}
		defer c.Close()
		line, _ := brw.ReadString('\n')
		c.Write([]byte("bye: " + line))
	}))
	if err := tr.SetCertificate("id-app", cat(cert, key)); err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"http", "https"} {
		var c net.Conn
		var br *bufio.Reader
		if scheme == "http" {
			c, br = dialWS(t, tr.addr, "app.skiff.test")
		} else {
			tc, err := tls.Dial("tcp", tr.tls, &tls.Config{ServerName: "app.skiff.test", RootCAs: ca.pool})
			if err != nil {
				t.Fatal(err)
			}
			c, br = upgradeWS(t, tc, "app.skiff.test")
		}
		io.WriteString(c, "hello\n")
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "bye: hello\n" {
			t.Errorf("%s: after the app ended the websocket the client got %q, %v (want the app's last words, then the end)", scheme, rest, err)
		}
		c.Close()
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// D6: an h2c upgrade is never passed to the app.
func TestH2CUpgradeRefused(t *testing.T) {
	tr := newTestRouter(t, nil)
	got := make(chan http.Header, 1)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/x" {
			got <- r.Header.Clone()
		}
	}))
	resp := tr.raw(t, "GET /x HTTP/1.1\r\nHost: app.skiff.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("h2c request: %q", firstLine(resp))
	}
	h := <-got
	if h.Get("Upgrade") != "" || h.Get("Http2-Settings") != "" {
		t.Errorf("h2c upgrade reached the app: %v", h)
	}
}

// SSE reaches the client event by event, not when a buffer fills.
func TestStreamingFlushedAtOnce(t *testing.T) {
	tr := newTestRouter(t, nil)
	next := make(chan struct{})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
		case "/chunked":
			w.Header().Set("Content-Type", "application/json")
		default:
			return
		}
		for i := range 3 {
			io.WriteString(w, "data: event"+string(rune('0'+i))+"\n\n")
			http.NewResponseController(w).Flush()
			<-next
		}
	}))
	for _, path := range []string{"/sse", "/chunked"} {
		resp, err := tr.client().Get("http://app.skiff.test" + path)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for i := range 3 {
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, "event"+string(rune('0'+i))) {
				t.Fatalf("%s event %d: %q, %v", path, i, line, err)
			}
			br.ReadString('\n')
			next <- struct{}{} // the app sends the next event only after this one arrived
		}
		resp.Body.Close()
	}
}

// Request bodies stream to the app: it sees the first part before the client
// has sent the rest.
func TestRequestBodyStreams(t *testing.T) {
	tr := newTestRouter(t, nil)
	firstPart := make(chan string)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" {
			return
		}
		buf := make([]byte, 5)
		io.ReadFull(r.Body, buf)
		firstPart <- string(buf)
		io.Copy(io.Discard, r.Body)
	}))
	pr, pw := io.Pipe()
	go func() {
		resp, err := tr.client().Post("http://app.skiff.test/", "text/plain", pr)
		if err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte("first"))
	select {
	case got := <-firstPart:
		if got != "first" {
			t.Errorf("app read %q", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the app did not get the start of the body before its end")
	}
	pw.Close()
}

func TestGzip(t *testing.T) {
	tr := newTestRouter(t, nil)
	text := strings.Repeat("hello skiff ", 500)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/text":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("ETag", `"abc"`)
			io.WriteString(w, text)
		case "/small":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "tiny")
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, text)
		case "/already":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, text)
		}
	}))
	c := tr.client()
	resp, body := get(t, c, "http://app.skiff.test/text", "Accept-Encoding", "gzip, deflate, br")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" || resp.Header.Get("Etag") != `W/"abc"` {
		t.Fatalf("text not compressed: %v", resp.Header)
	}
	if len(body) >= len(text)/4 {
		t.Errorf("compressed %d bytes to %d", len(text), len(body))
	}
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || string(plain) != text {
		t.Fatalf("gunzip: %v, %d bytes", err, len(plain))
	}
	for path, ae := range map[string]string{"/small": "gzip", "/png": "gzip", "/already": "gzip", "/text": "gzip;q=0, identity"} {
		resp, body := get(t, c, "http://app.skiff.test"+path, "Accept-Encoding", ae)
		if resp.Header.Get("Content-Encoding") == "gzip" {
			t.Errorf("%s (Accept-Encoding: %s) compressed", path, ae)
		}
		if path != "/small" && len(body) != len(text) {
			t.Errorf("%s: %d bytes", path, len(body))
		}
	}
	if resp, _ := get(t, c, "http://app.skiff.test/text"); resp.Header.Get("Content-Encoding") != "" {
		t.Error("compressed for a client that did not ask")
	}
}

func TestNegotiate(t *testing.T) {
	for v, want := range map[string]coding{
		"gzip": codingGzip, "GZIP": codingGzip, "br, gzip;q=0.5": codingGzip, "gzip;q=0": identity, "gzip; q=0.0": identity,
		"deflate": identity, "": identity, "x-gzip": identity, "gzip;q=0.001": codingGzip, "*": identity,
		"gzip, deflate, br, zstd": codingZstd, "zstd;q=0.5, gzip": codingGzip, "zstd": codingZstd, "zstd;q=0, gzip": codingGzip,
		"gzip;q=bogus": identity, "gzip;q=2": identity,
	} {
		if got := negotiate(http.Header{"Accept-Encoding": {v}}); got != want {
			t.Errorf("negotiate(%q) = %v, want %v", v, got, want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "zstd;q=0.5, gzip", "gzip;q=0", ";;,,q=", "zstd; q = 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c := negotiate(http.Header{"Accept-Encoding": {v}})
		if c == codingGzip && !strings.Contains(strings.ToLower(v), "gzip") || c == codingZstd && !strings.Contains(strings.ToLower(v), "zstd") {
			t.Fatalf("negotiate(%q) = %v", v, c)
		}
	})
}

func TestZstd(t *testing.T) {
	tr := newTestRouter(t, nil)
	text := strings.Repeat("hello zstd ", 500)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, text)
	}))
	for range 3 { // pooled encoders are reset properly
		resp, body := get(t, tr.client(), "http://app.skiff.test/", "Accept-Encoding", "gzip, deflate, br, zstd")
		if resp.Header.Get("Content-Encoding") != "zstd" {
			t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
		}
		d, err := zstd.NewReader(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(d)
		d.Close()
		if err != nil || string(plain) != text {
			t.Fatalf("zstd: %v, %d bytes", err, len(plain))
		}
		if len(body) > len(text)/4 {
			t.Errorf("zstd: %d bytes for %d", len(body), len(text))
		}
	}
}
