package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// D1: duplicate Host headers and control characters in Host are refused.
func TestBadHostHeaders(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, echo("a"))
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	before := b.requests.Load()
	for name, req := range map[string]string{
		"duplicate":      "GET / HTTP/1.1\r\nHost: app.skiff.test\r\nHost: other.skiff.test\r\n\r\n",
		"duplicate same": "GET / HTTP/1.1\r\nHost: app.skiff.test\r\nHost: app.skiff.test\r\n\r\n",
		"CR in host":     "GET / HTTP/1.1\r\nHost: app.skiff.test\rX-Injected: 1\r\n\r\n",
		"LF in host":     "GET / HTTP/1.1\r\nHost: app.skiff.test\nX: y\r\nHost: a\r\n\r\n",
		"NUL in host":    "GET / HTTP/1.1\r\nHost: app.skiff.test\x00.evil\r\n\r\n",
		"space in host":  "GET / HTTP/1.1\r\nHost: app.skiff.test evil\r\n\r\n",
		"missing host":   "GET / HTTP/1.1\r\n\r\n",
		"empty host":     "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		"bad port":       "GET / HTTP/1.1\r\nHost: app.skiff.test:https\r\n\r\n",
		"unicode host":   "GET / HTTP/1.1\r\nHost: аpp.skiff.test\r\n\r\n",
	} {
		resp := tr.raw(t, req)
		if !strings.HasPrefix(resp, "HTTP/1.1 400") {
			t.Errorf("%s: got %q, want 400", name, firstLine(resp))
		}
	}
	if n := b.requests.Load() - before; n != 0 {
		t.Errorf("%d bad requests reached the app", n)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// D1: an absolute-form request target names the host (RFC 9112 §3.2.2): the
// request is routed by it, and the app sees that host and never the other.
func TestAbsoluteFormRequest(t *testing.T) {
	tr := newTestRouter(t, nil)
	hosts := make(chan string, 4)
	mk := func(name string) *testBackend {
		return startBackend(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("User-Agent") != "skiff-health-check" {
				hosts <- name + " " + r.Host + " " + r.Header.Get("X-Forwarded-Host")
			}
		})
	}
	tr.addApp(t, skiff.AppRoute{Name: "one"}, mk("one"))
	tr.addApp(t, skiff.AppRoute{Name: "two"}, mk("two"))
	resp := tr.raw(t, "GET http://two.skiff.test/x HTTP/1.1\r\nHost: one.skiff.test\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("absolute form: %q", firstLine(resp))
	}
	if got := <-hosts; got != "two two.skiff.test two.skiff.test" {
		t.Errorf("app saw %q", got)
	}
	resp = tr.raw(t, "GET http://nope.skiff.test/x HTTP/1.1\r\nHost: one.skiff.test\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 404") {
		t.Errorf("absolute form for an unknown host: %q", firstLine(resp))
	}
}

// D3: ambiguous framing is refused or re-framed; the app never receives more
// requests than the client sent.
func TestSmuggling(t *testing.T) {
	tr := newTestRouter(t, nil)
	var mu sync.Mutex
	var seen []string
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("User-Agent") != "skiff-health-check" {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.URL.Path+" "+string(body))
			mu.Unlock()
		}
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	const h = "Host: app.skiff.test\r\n"
	smuggled := "GET /smuggled HTTP/1.1\r\n" + h + "\r\n"
	// max is how many requests the app may see: never more than the client
	// sent and got answers for. reject: the framing is ambiguous or invalid,
	// so the client must get an error status.
	cases := []struct {
		name   string
		req    string
		max    int
		reject bool
	}{
		// Both framings: 400 and the connection closed (RFC 9112 §6.3),
		// as the README promises; framing_test.go has the variations.
		{"CL+TE", "POST /a HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 0, true},
		{"TE+CL", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, 0, true},
		{"two CL", "POST /a HTTP/1.1\r\n" + h + "Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + smuggled, 0, true},
		{"TE chunked, identity", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, 0, true},
		{"TE xchunked", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 0, true},
		{"TE with space", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, 0, true},
		// Invalid chunking is found while the body streams to the app: the
		// app sees one request with a broken body, the client an error.
		{"bare LF chunk size", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n1\nA\r\n0\r\n\r\n" + smuggled, 1, true},
		{"chunk ext bare CR", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n1;a=\rb\r\nA\r\n0\r\n\r\n" + smuggled, 1, true},
		{"huge chunk size", "POST /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nA\r\n0\r\n\r\n" + smuggled, 1, true},
		// obs-fold is unfolded (RFC 9112 §5.2 allows replacing it with SP),
		// then the pipelined request is a real second request.
		{"obs-fold", "POST /a HTTP/1.1\r\n" + h + "X-A: b\r\n c\r\nContent-Length: 0\r\n\r\n" + smuggled, 2, false},
		{"GET with body", "GET /a HTTP/1.1\r\n" + h + "Content-Length: 44\r\n\r\n" + smuggled, 1, false},
		{"pipelined", "GET /a HTTP/1.1\r\n" + h + "\r\n" + smuggled, 2, false},
	}
	for _, tc := range cases {
		mu.Lock()
		seen = nil
		mu.Unlock()
		resp := tr.raw(t, tc.req)
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		got := append([]string(nil), seen...)
		mu.Unlock()
		responses := strings.Count(resp, "HTTP/1.1 ")
		if len(got) > tc.max || len(got) > responses {
			t.Errorf("%s: app saw %d requests %q for %d responses (max %d)", tc.name, len(got), got, responses, tc.max)
		}
		// 501 is RFC 9112's answer to an unknown transfer coding.
		if tc.reject && !strings.HasPrefix(resp, "HTTP/1.1 4") && !strings.HasPrefix(resp, "HTTP/1.1 501") {
			t.Errorf("%s: got %q, want a 4xx or 501", tc.name, firstLine(resp))
		}
		if tc.reject && strings.Contains(resp[min(len(resp), 12):], "HTTP/1.1 ") {
			t.Errorf("%s: the connection went on after invalid framing: %q", tc.name, resp)
		}
	}
}

// D3: a query the app receives is the one the router parsed.
func TestQueryPassedAsParsed(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, echo("a")))
	_, body := get(t, tr.client(), "http://app.skiff.test/p?a=1&b=%2F&c=x+y")
	if !strings.Contains(body, "/p?a=1&b=%2F&c=x+y") {
		t.Errorf("query changed: %s", firstLine(body))
	}
	resp := tr.raw(t, "GET /p?a=%x&b=1 HTTP/1.1\r\nHost: app.skiff.test\r\nConnection: close\r\n\r\n")
	if strings.Contains(resp, "a=%x") {
		t.Errorf("unparseable query parameter forwarded: %s", resp)
	}
}

// D4: a request with too large a header block is refused before routing.
func TestHugeRequestHeaders(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, echo("a")))
	resp := tr.raw(t, "GET / HTTP/1.1\r\nHost: app.skiff.test\r\nX-Big: "+strings.Repeat("a", 200<<10)+"\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 431") {
		t.Errorf("200 KiB header: %q, want 431", firstLine(resp))
	}
}

// D5: the app never answers → 504 after the app's response timeout, and the
// upstream connection is closed.
func TestAppNeverAnswers(t *testing.T) {
	tr := newTestRouter(t, nil)
	gone := make(chan struct{}, 10)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			return // the health check
		}
		<-r.Context().Done() // the router gave up and closed the connection
		gone <- struct{}{}
	})
	tr.addApp(t, skiff.AppRoute{Name: "app", ResponseTimeout: 300 * time.Millisecond}, b)
	start := time.Now()
	resp, body := get(t, tr.client(), "http://app.skiff.test/hang")
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "504") {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("504 after %v, want about 300ms", d)
	}
	select {
	case <-gone:
	case <-time.After(2 * time.Second):
		t.Error("the upstream request was not cancelled")
	}
	// The router-wide timeout (enforced by the shared Transport) too.
	tr2 := newTestRouter(t, func(c *Config) { c.ResponseTimeout = 300 * time.Millisecond })
	tr2.addApp(t, skiff.AppRoute{Name: "app"}, b)
	if resp, _ := get(t, tr2.client(), "http://app.skiff.test/hang"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("router-wide timeout: %d, want 504", resp.StatusCode)
	}
	// An app's own timeout wins over the router's, longer or shorter, for
	// every method.
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		} else if r.URL.Path == "/hang" {
			<-r.Context().Done()
		}
	})
	tr2.addApp(t, skiff.AppRoute{Name: "patient", ResponseTimeout: 2 * time.Second}, slow)
	tr2.addApp(t, skiff.AppRoute{Name: "hasty", ResponseTimeout: 100 * time.Millisecond}, slow)
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		{"GET", "http://patient.skiff.test/slow", 200},
		{"POST", "http://patient.skiff.test/slow", 200},
		{"GET", "http://hasty.skiff.test/hang", 504},
		{"POST", "http://hasty.skiff.test/hang", 504},
		{"POST", "http://app.skiff.test/hang", 504},
	} {
		var body io.Reader
		if tc.method == "POST" {
			body = strings.NewReader("body")
		}
		req, _ := http.NewRequest(tc.method, tc.url, body)
		resp, err := tr2.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.url, resp.StatusCode, tc.want)
		}
	}
	if DefaultResponseTimeout != 30*time.Second {
		t.Errorf("default first-byte timeout %v, want Heroku's 30s", DefaultResponseTimeout)
	}
}

// D5: an app that sends a huge header block gets a 502, not the client's memory.
func TestAppHugeHeaders(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			for i := range 200 {
				w.Header().Set(fmt.Sprintf("X-H%d", i), strings.Repeat("v", 1000))
			}
		}
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	resp, _ := get(t, tr.client(), "http://app.skiff.test/big")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("200 KB of response headers: %d, want 502", resp.StatusCode)
	}
}

// D5: an app that resets the connection → 502; one that closes mid-body
// aborts the client connection (no silent truncation with a 200).
func TestAppResets(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reset":
			c, _, _ := http.NewResponseController(w).Hijack()
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		case "/midway":
			w.Header().Set("Content-Length", "100000")
			w.Write(make([]byte, 1000))
			http.NewResponseController(w).Flush()
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		}
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	c := tr.client()
	resp, _ := get(t, c, "http://app.skiff.test/reset")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("reset: %d, want 502", resp.StatusCode)
	}
	r2, err := c.Get("http://app.skiff.test/midway")
	if err == nil {
		_, err = io.ReadAll(r2.Body)
		r2.Body.Close()
	}
	if err == nil {
		t.Error("a response cut by the app reached the client as complete")
	}
}

// D5: an app that streams forever keeps streaming to the client, and the
// stream ends on the app's side when the client leaves.
func TestAppStreamsForever(t *testing.T) {
	tr := newTestRouter(t, nil)
	ended := make(chan struct{})
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				break
			}
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				close(ended)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		close(ended)
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://app.skiff.test/stream", nil)
	resp, err := tr.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	events := 0
	for sc.Scan() && events < 20 {
		if strings.HasPrefix(sc.Text(), "data: ") {
			events++
		}
	}
	cancel()
	resp.Body.Close()
	if events < 20 {
		t.Fatalf("got %d events", events)
	}
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Fatal("the app's stream did not end after the client left")
	}
}

// D4: thousands of slowloris connections do not slow normal requests down,
// and are closed by the header timeout. (The 10,000-connection version is
// bench/router/slowloris.sh.)
func TestSlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("slowloris opens 2,000 connections")
	}
	tr := newTestRouter(t, func(c *Config) { c.ReadHeaderTimeout = 3 * time.Second })
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, echo("a")))
	c := tr.client()
	latency := func(n int) time.Duration {
		var ds []time.Duration
		for range n {
			start := time.Now()
			get(t, c, "http://app.skiff.test/")
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)*99/100]
	}
	base := latency(200)

	const slow = 2000
	conns := make([]net.Conn, 0, slow)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range slow {
		conn, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.skiff.test\r\nX-Slow: ")
		conns = append(conns, conn)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // keep dripping a byte to each connection
		for {
			for _, conn := range conns {
				conn.Write([]byte("a"))
			}
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	under := latency(200)
	close(stop)
	wg.Wait()
	t.Logf("p99 without slow connections %v, with %d: %v", base, slow, under)
	if under > 250*time.Millisecond && under > 10*base {
		t.Errorf("p99 with %d slow connections: %v (was %v)", slow, under, base)
	}
	// The header timeout closes them: a read sees EOF or a 408.
	deadline := time.Now().Add(6 * time.Second)
	closed := 0
	for _, conn := range conns[:50] {
		conn.SetReadDeadline(deadline)
		buf := make([]byte, 64)
		if _, err := conn.Read(buf); err != nil || strings.HasPrefix(string(buf), "HTTP/1.1 408") {
			closed++
		}
	}
	if closed != 50 {
		t.Errorf("%d of 50 slow connections closed by the header timeout", closed)
	}
}

// D5: after many hung and reset requests, goroutines and upstream
// connections return to their baseline.
func TestNoLeaksAfterFailures(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			<-r.Context().Done()
		case "/reset":
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		}
	})
	tr.addApp(t, skiff.AppRoute{Name: "app", ResponseTimeout: 100 * time.Millisecond}, b)
	c := tr.client()
	get(t, c, "http://app.skiff.test/")
	c.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			path := "/hang"
			if i%2 == 1 {
				path = "/reset"
			}
			resp, err := c.Get("http://app.skiff.test" + path)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	c.CloseIdleConnections()
	tr.transport.CloseIdleConnections()
	tr.direct.closeIdle()
	var n int
	waitFor(t, 5*time.Second, "goroutines back to baseline", func() bool {
		n = runtime.NumGoroutine()
		return n <= base+2
	})
	tr.conns.mu.Lock()
	open := len(tr.conns.conns[b.addr])
	tr.conns.mu.Unlock()
	if open != 0 {
		t.Errorf("%d upstream connections left open", open)
	}
}

// D4: a client that stops sending its body in the middle is cut after the
// body idle timeout, and the app's request ends; a slow but steady upload and
// a long think after the body are fine.
func TestSlowRequestBody(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) { c.BodyIdleTimeout = 300 * time.Millisecond })
	appErr := make(chan error, 4)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" {
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil && r.URL.Path == "/think" {
			time.Sleep(700 * time.Millisecond) // longer than the body idle timeout
		}
		appErr <- err
		fmt.Fprint(w, n)
	}))
	post := func(path string, chunks int, gap time.Duration) (string, error) {
		pr, pw := io.Pipe()
		go func() {
			for range chunks {
				pw.Write([]byte("0123456789"))
				time.Sleep(gap)
			}
			pw.Close()
		}()
		resp, err := tr.client().Post("http://app.skiff.test"+path, "text/plain", pr)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.Status[:3] + " " + string(b), err
	}
	if got, err := post("/", 5, 100*time.Millisecond); err != nil || got != "200 50" {
		t.Errorf("steady upload: %q, %v", got, err)
	}
	<-appErr
	if got, err := post("/think", 2, 10*time.Millisecond); err != nil || got != "200 20" {
		t.Errorf("upload then a long think: %q, %v", got, err)
	}
	<-appErr
	start := time.Now()
	got, _ := post("/", 2, 2*time.Second) // stalls for 2 s after the first chunk
	if !strings.HasPrefix(got, "408") {
		t.Errorf("stalled upload: %q, want 408", got)
	}
	select {
	case err := <-appErr:
		if err == nil {
			t.Error("the app got a complete body from a stalled upload")
		}
	case <-time.After(3 * time.Second):
		t.Error("the app's request did not end")
	}
	if d := time.Since(start); d > 1900*time.Millisecond {
		t.Errorf("stalled upload cut after %v", d)
	}
}
