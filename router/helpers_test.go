package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// testLogger writes the router's log to the test log when -v asks for it.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testRouter is a router serving plain HTTP on a real 127.0.0.1 port.
type testRouter struct {
	*Router
	addr string // host:port of the HTTP listener
	tls  string // host:port of the HTTPS listener, if started
}

func newTestRouter(t testing.TB, mod func(*Config)) *testRouter {
	t.Helper()
	cfg := Config{BaseDomain: "skiff.test", LogDir: t.TempDir(), TLSDir: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.Serve(l)
	tr := &testRouter{Router: r, addr: l.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return tr
}

// startTLS adds an HTTPS listener.
func (tr *testRouter) startTLS(t testing.TB) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr.tls = l.Addr().String()
	go tr.ServeTLS(l)
}

// backend is a real app instance on 127.0.0.1 that counts its requests.
type testBackend struct {
	addr     string
	requests atomic.Int64
	srv      *http.Server
	l        net.Listener
}

func startBackend(t testing.TB, h http.HandlerFunc) *testBackend {
	return startBackendWith(t, h, nil)
}

// startBackendWith lets the test adjust the app's server before it starts.
func startBackendWith(t testing.TB, h http.HandlerFunc, mod func(*http.Server)) *testBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{addr: l.Addr().String(), l: l}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		h(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	if mod != nil {
		mod(b.srv)
	}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// echo answers with the instance address and what it received.
func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", name)
		fmt.Fprintf(w, "%s %s %s %s\n", name, r.Method, r.Host, r.URL.RequestURI())
		for k, v := range r.Header {
			fmt.Fprintf(w, "%s: %q\n", k, v)
		}
	}
}

// addApp routes app name to the backends (health-checked by Deploy).
func (tr *testRouter) addApp(t testing.TB, route skiff.AppRoute, backends ...*testBackend) {
	t.Helper()
	if route.AppID == "" {
		route.AppID = "id-" + route.Name
	}
	if err := tr.SetApp(route); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, b := range backends {
		addrs = append(addrs, b.addr)
	}
	if err := tr.Deploy(context.Background(), route.AppID, addrs); err != nil {
		t.Fatal(err)
	}
}

// client sends requests to the router whatever the URL's host says.
func (tr *testRouter) client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, tr.addr)
			},
			DisableCompression:  true,
			MaxIdleConnsPerHost: 64,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
}

func get(t testing.TB, c *http.Client, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Add(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// raw writes a literal request to the router and returns the raw response
// (until the router closes the connection or 1 s passes).
func (tr *testRouter) raw(t testing.TB, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
