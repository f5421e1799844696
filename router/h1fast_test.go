package router

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// recorder is an app that remembers the requests it got.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rec *recorder) handler(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("User-Agent") == "skiff-health-check" {
		return
	}
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.seen = append(rec.seen, r.Method+" "+r.URL.RequestURI()+" "+string(body))
	rec.mu.Unlock()
	fmt.Fprintf(w, "%s %s proto=%s cookie=%d", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-Proto"), len(r.Header.Get("Cookie")))
}

func (rec *recorder) got() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen...)
}

// readAll reads responses from br until the connection ends or times out:
// their status codes and bodies.
func readAll(t *testing.T, br *bufio.Reader) []string {
	t.Helper()
	var out []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, resp.Status[:3]+" "+string(body))
		if resp.Close {
			return out
		}
	}
}

// The fast path's parser refuses what RFC 9112 lets a server refuse (and
// net/http takes): 400, the connection closed, the app never asked.
func TestFastPathRefusesMalformedRequests(t *testing.T) {
	tr := newTestRouter(t, nil)
	rec := &recorder{}
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, rec.handler))
	const h = "Host: app.skiff.test\r\n"
	next := "GET /after HTTP/1.1\r\n" + h + "\r\n"
	for name, req := range map[string]string{
		"bare LF":                 "GET /a HTTP/1.1\n" + h + "\n",
		"bare LF in a field":      "GET /a HTTP/1.1\r\nHost: app.skiff.test\nX: 1\r\n\r\n",
		"bare CR":                 "GET /a HTTP/1.1\r\nHost: app.skiff.test\rX: 1\r\n\r\n",
		"obs-fold":                "GET /a HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n",
		"space before the colon":  "GET /a HTTP/1.1\r\nHost : app.skiff.test\r\n\r\n",
		"tab before the colon":    "GET /a HTTP/1.1\r\n" + h + "X-A\t: 1\r\n\r\n",
		"two Hosts":               "GET /a HTTP/1.1\r\n" + h + h + "\r\n",
		"no Host":                 "GET /a HTTP/1.1\r\nX: 1\r\n\r\n",
		"a control character":     "GET /a HTTP/1.1\r\n" + h + "X: a\x01b\r\n\r\n",
		"CL and TE":               "POST /a HTTP/1.1\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"whitespace before field": "GET /a HTTP/1.1\r\n X: 1\r\n" + h + "\r\n",
	} {
		resp := tr.raw(t, req+next)
		if !strings.HasPrefix(resp, "HTTP/1.1 400 ") || strings.Count(resp, "HTTP/1.1") != 1 {
			t.Errorf("%s: %q, want one 400 and the end of the connection", name, firstLine(resp))
		}
	}
	if seen := rec.got(); len(seen) != 0 {
		t.Errorf("the app got %q", seen)
	}
}

// A connection starts on the fast path and moves to net/http at the first
// request the fast path leaves to it (here a chunked body), with every
// request answered in order, over HTTP and over HTTPS (where the TLS state
// goes along: the app still sees https).
func TestFastPathHandsOverMidConnection(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	c, k := ca.issue(t, "app.skiff.test")
	if err := tr.SetCertificate("id-app", nil); err == nil {
		t.Fatal("a certificate for an app not routed yet")
	}
	rec := &recorder{}
	tr.addApp(t, skiff.AppRoute{Name: "app", NoRedirect: true}, startBackend(t, rec.handler))
	if err := tr.SetCertificate("id-app", cat(c, k)); err != nil {
		t.Fatal(err)
	}
	const h = "Host: app.skiff.test\r\n"
	reqs := "GET /one HTTP/1.1\r\n" + h + "\r\n" +
		"POST /two HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc" +
		"POST /three HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
	for _, proto := range []string{"http", "https"} {
		var conn net.Conn
		var err error
		if proto == "http" {
			conn, err = net.Dial("tcp", tr.addr)
		} else {
			conn, err = tls.Dial("tcp", tr.tls, &tls.Config{ServerName: "app.skiff.test", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
		}
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, reqs)
		got := strings.Join(readAll(t, bufio.NewReader(conn)), " | ")
		conn.Close()
		want := fmt.Sprintf("200 GET /one proto=%[1]s cookie=0 | 200 POST /two proto=%[1]s cookie=0 | 200 POST /three proto=%[1]s cookie=0", proto)
		if got != want {
			t.Errorf("%s: %s\nwant %s", proto, got, want)
		}
	}
	if seen := strings.Join(rec.got(), "|"); seen != "GET /one |POST /two abc|POST /three xyz|GET /one |POST /two abc|POST /three xyz" {
		t.Errorf("the app got %s", seen)
	}
}

// Requests sent at once are answered in order; a head larger than the
// read buffer still goes through whole.
func TestFastPathPipeliningAndLargeHeads(t *testing.T) {
	tr := newTestRouter(t, nil)
	rec := &recorder{}
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, rec.handler))
	cookie := strings.Repeat("c", 3*fastReadBuf)
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "GET /%d HTTP/1.1\r\nHost: app.skiff.test\r\n", i)
		if i%5 == 4 {
			b.WriteString("Cookie: " + cookie + "\r\n")
		}
		b.WriteString("\r\n")
	}
	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, b.String())
	br := bufio.NewReader(conn)
	for i := range 20 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf("GET /%d proto=http cookie=%d", i, map[bool]int{true: len(cookie)}[i%5 == 4])
		if string(body) != want {
			t.Fatalf("response %d: %q, want %q", i, body, want)
		}
	}
}

// A client that stops sending a Content-Length body in the middle gets 408
// after the body idle timeout; the app never sees a request.
func TestFastPathBodyTimeout(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) { c.BodyIdleTimeout = 200 * time.Millisecond })
	rec := &recorder{}
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, rec.handler))
	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	io.WriteString(conn, "POST /p HTTP/1.1\r\nHost: app.skiff.test\r\nContent-Length: 10\r\n\r\nhalf")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("stalled body: %v %v", resp, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("408 after %v", d)
	}
	if seen := rec.got(); len(seen) != 0 {
		t.Errorf("the app got %q", seen)
	}
}

// A POST is never sent on a kept-alive connection the app has closed
// meanwhile (it cannot be retried: the app may have seen it), so an app
// that closes idle connections quickly fails no POST.
func TestFastPathPostAfterAppClosedIdle(t *testing.T) {
	tr := newTestRouter(t, nil)
	rec := &recorder{}
	b := startBackendWith(t, rec.handler, func(s *http.Server) { s.IdleTimeout = 30 * time.Millisecond })
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	c := tr.client()
	for i := range 10 {
		resp, err := c.Post("http://app.skiff.test/p", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %d after the app closed the idle connection: %d", i, resp.StatusCode)
		}
		time.Sleep(60 * time.Millisecond)
	}
}

// The router adds no Content-Type of its own where the app sent none, on
// either path (net/http would guess one from the body).
func TestNoContentTypeGuessed(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	c, k := ca.issue(t, "app.skiff.test")
	tr.addApp(t, skiff.AppRoute{Name: "app", NoRedirect: true}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html><body>untyped</body></html>")
	}))
	if err := tr.SetCertificate("id-app", cat(c, k)); err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		resp, err := tr.tlsClient(ca.pool, h2).Get("https://app.skiff.test/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct, ok := resp.Header["Content-Type"]; ok {
			t.Errorf("h2=%v: Content-Type %q added", h2, ct)
		}
	}
	if resp := tr.raw(t, "GET / HTTP/1.1\r\nHost: app.skiff.test\r\nConnection: close\r\n\r\n"); strings.Contains(resp, "Content-Type") {
		t.Errorf("plain HTTP: %q", resp)
	}
}

// What an app sends is checked before a client sees it, and framed anew:
// a header that would split the client's response, or framing that does
// not add up, is a 502; bodies without a length reach the client chunked.
func TestFastPathAppResponses(t *testing.T) {
	answers := map[string]string{
		"/crlf":      "HTTP/1.1 200 OK\r\nX-A: a\rInjected: yes\r\nContent-Length: 2\r\n\r\nok",
		"/fold":      "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"/gzipte":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/twocl":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"/clte":      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"/status":    "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
		"/upgrade":   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"/badchunk":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
		"/nolength":  "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end",
		"/nocontent": "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		"/hop":       "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
		"/up":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(c, answers[req.URL.Path])
					if req.URL.Path == "/nolength" {
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
	for path, want := range map[string]string{
		"/crlf": "502", "/fold": "502", "/gzipte": "502", "/twocl": "502", "/status": "502", "/upgrade": "502",
		"/clte": "200 ok chunked", "/nolength": "200 to the end chunked", "/nocontent": "204 ", "/hop": "200 ok", "/up": "200 ok",
	} {
		resp := tr.raw(t, "GET "+path+" HTTP/1.1\r\nHost: app.skiff.test\r\nConnection: close\r\n\r\n")
		r, err := http.ReadResponse(bufio.NewReader(strings.NewReader(resp)), nil)
		if err != nil {
			t.Errorf("%s: %v in %q", path, err, resp)
			continue
		}
		body, _ := io.ReadAll(r.Body)
		got := r.Status[:3]
		if !strings.HasPrefix(want, "502") {
			got += " " + string(body)
			if len(r.TransferEncoding) > 0 {
				got += " chunked"
			}
		}
		if got != want {
			t.Errorf("%s: %q, want %q (%q)", path, got, want, resp)
		}
		if strings.Contains(resp, "Injected") || strings.Contains(resp, "secret") || strings.Contains(resp, "Keep-Alive") {
			t.Errorf("%s: passed on %q", path, resp)
		}
	}
	// A bad chunk after the head went out: the client sees a cut body.
	resp, err := tr.client().Get("http://app.skiff.test/badchunk")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a malformed chunked body reached the client as complete")
	}
}

// A new connection that sends nothing is closed after the header timeout;
// between requests on a kept-alive one, the idle timeout applies.
func TestFastPathTimeouts(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) {
		c.ReadHeaderTimeout = 200 * time.Millisecond
		c.IdleTimeout = 2 * time.Second
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, echo("a")))
	silent, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF || time.Since(start) > time.Second {
		t.Errorf("silent connection: %v after %v, want EOF after the header timeout", err, time.Since(start))
	}

	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for i := range 2 {
		if i > 0 {
			time.Sleep(500 * time.Millisecond) // past the header timeout, within the idle one
		}
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.skiff.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on a kept-alive connection: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// A client that leaves while the app works on its answer ends the app's
// request (its context is cancelled), rather than the router waiting out
// the response timeout for nobody; over HTTPS too.
func TestFastPathClientLeavesWhileAppWorks(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	c, k := ca.issue(t, "app.skiff.test")
	ended := make(chan struct{}, 2)
	tr.addApp(t, skiff.AppRoute{Name: "app", NoRedirect: true}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
			ended <- struct{}{}
		}
	}))
	if err := tr.SetCertificate("id-app", cat(c, k)); err != nil {
		t.Fatal(err)
	}
	for _, useTLS := range []bool{false, true} {
		var conn net.Conn
		var err error
		if useTLS {
			conn, err = tls.Dial("tcp", tr.tls, &tls.Config{ServerName: "app.skiff.test", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
		} else {
			conn, err = net.Dial("tcp", tr.addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET /hang HTTP/1.1\r\nHost: app.skiff.test\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		conn.Close()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Errorf("tls=%v: the app's request went on after the client left", useTLS)
		}
	}
}
