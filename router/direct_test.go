package router

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// An app that closes idle keep-alive connections quickly (Node's default is
// 5 s) never makes a request fail: the request is sent again on a new one.
func TestDirectStaleConnections(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackendWith(t, echo("a"), func(s *http.Server) { s.IdleTimeout = 30 * time.Millisecond })
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	c := tr.client()
	for i := range 10 {
		if resp, _ := get(t, c, "http://app.skiff.test/"); resp.StatusCode != 200 {
			t.Fatalf("request %d after the app closed the idle connection: %d", i, resp.StatusCode)
		}
		time.Sleep(60 * time.Millisecond)
	}
	for i := range 10 {
		if resp, _ := get(t, c, "http://app.skiff.test/"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
}

// Raw upstream answers the direct transport must handle like net/http does.
func TestDirectRawResponses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	answers := map[string]string{
		"/up":      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"/hints":   "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
		"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: yes\r\n\r\n",
		"/extra":   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
		"/eof":     "HTTP/1.0 200 OK\r\n\r\nuntil close",
		"/garbage": "NOT HTTP AT ALL\r\n\r\n",
		"/bigHead": "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\nContent-Length: 0\r\n\r\n",
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					req, err := http.ReadRequest(bufioReader(c))
					if err != nil {
						return
					}
					ans := answers[req.URL.Path]
					io.WriteString(c, ans)
					if strings.HasPrefix(ans, "HTTP/1.0") || req.URL.Path == "/garbage" {
						return
					}
				}
			}()
		}
	}()
	tr := newTestRouter(t, nil)
	if err := tr.SetApp(skiff.AppRoute{AppID: "id-app", Name: "app", Health: skiff.HealthCheck{Path: "/up"}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Deploy(t.Context(), "id-app", []string{l.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	c := tr.client()
	for path, want := range map[string]string{"/hints": "200 final", "/chunked": "200 hello", "/eof": "200 until close",
		"/garbage": "502 ", "/bigHead": "502 ", "/up": "200 ok"} {
		resp, body := get(t, c, "http://app.skiff.test"+path)
		got := resp.Status[:3] + " " + body
		if strings.HasPrefix(want, "502") {
			got = resp.Status[:3] + " "
		}
		if got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
		if path == "/chunked" && resp.Trailer.Get("X-T") != "yes" {
			t.Errorf("trailer lost: %v", resp.Trailer)
		}
	}
	// Bytes after a response are never taken for the next response.
	for range 3 {
		if _, body := get(t, c, "http://app.skiff.test/extra"); body != "ok" {
			t.Fatalf("extra bytes: %q", body)
		}
		if _, body := get(t, c, "http://app.skiff.test/up"); body != "ok" {
			t.Fatalf("after extra bytes: %q", body)
		}
	}
}

// Idle connections past the idle timeout are closed, not kept forever at the
// bottom of the pool.
func TestDirectIdlePruning(t *testing.T) {
	tr := &directTransport{idleTimeout: time.Minute, maxIdle: 10, idle: map[string][]*directConn{}}
	mk := func(age time.Duration) (*directConn, net.Conn) {
		a, b := net.Pipe()
		dc := &directConn{conn: a, br: bufioReader(a)}
		dc.lastUsed = time.Now().Add(-age)
		return dc, b
	}
	old, oldPeer := mk(2 * time.Minute)
	tr.idle["x"] = []*directConn{old}
	fresh, _ := mk(0)
	tr.put("x", fresh)
	if len(tr.idle["x"]) != 1 || tr.idle["x"][0] != fresh {
		t.Fatalf("idle list after put: %d entries", len(tr.idle["x"]))
	}
	oldPeer.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := oldPeer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("stale connection not closed: %v", err)
	}
	tr.dropIdle("x")
	if len(tr.idle) != 0 {
		t.Error("dropIdle left connections")
	}
}

// HEAD answers carry the length of the body they do not send, and the
// connection stays usable.
func TestDirectHead(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}))
	c := tr.client()
	for range 3 {
		req, _ := http.NewRequest("HEAD", "http://app.skiff.test/", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 5 {
			t.Fatalf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
		}
		if _, body := get(t, c, "http://app.skiff.test/"); body != "hello" {
			t.Fatalf("GET after HEAD: %q", body)
		}
	}
}
