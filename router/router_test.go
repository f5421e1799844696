package router

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func TestRoutesByHost(t *testing.T) {
	tr := newTestRouter(t, nil)
	web := startBackend(t, echo("web"))
	api := startBackend(t, echo("shop"))
	wild := startBackend(t, echo("wild"))
	tr.addApp(t, skiff.AppRoute{Name: "web", Domains: []string{"www.example.com"}}, web)
	tr.addApp(t, skiff.AppRoute{Name: "shop", Domains: []string{"API.example.com."}}, api)
	tr.addApp(t, skiff.AppRoute{Name: "wild", Domains: []string{"*.wild.example"}}, wild)
	c := tr.client()
	for host, want := range map[string]string{
		"web.skiff.test":       "web",
		"WEB.skiff.test.:80":   "web",
		"www.example.com":      "web",
		"api.example.com":      "shop",
		"shop.skiff.test:8080": "shop",
		"a.wild.example":       "wild",
		"wild.skiff.test":      "wild",
		"x.y.wild.example":     "",
		"wild.example":         "",
		"skiff.test":           "",
		"nope.skiff.test":      "",
		"example.com":          "",
		"127.0.0.1":            "",
	} {
		resp, body := get(t, c, "http://ignored/", "Host", host)
		if want == "" {
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("Host %s: status %d, want 404", host, resp.StatusCode)
			}
			for _, leak := range []string{"web", "shop", "wild", "skiff.test", "example"} {
				if strings.Contains(body, leak) {
					t.Errorf("404 page for %s mentions %q: %s", host, leak, body)
				}
			}
			continue
		}
		if got := resp.Header.Get("X-Instance"); got != want {
			t.Errorf("Host %s went to %q, want %q", host, got, want)
		}
	}
}

func TestSetAppRejectsBadInput(t *testing.T) {
	tr := newTestRouter(t, nil)
	for _, r := range []skiff.AppRoute{
		{AppID: "../../etc/x", Name: "app"},
		{AppID: "", Name: "app"},
		{AppID: "ok", Name: "Bad_Name"},
		{AppID: "ok", Name: "app", Domains: []string{"localhost"}},
		{AppID: "ok", Name: "app", Domains: []string{"a.example.com:80"}},
	} {
		if err := tr.SetApp(r); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("SetApp(%+v) = %v, want EINVALID", r, err)
		}
	}
	if len(tr.table.Load().byID) != 0 {
		t.Error("a refused route was added")
	}
}

func TestDomainBelongsToOneApp(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "one", Domains: []string{"shop.example.com", "*.one.example"}})
	for _, d := range []string{"shop.example.com", "SHOP.example.com.", "*.one.example", "one.skiff.test"} {
		err := tr.SetApp(skiff.AppRoute{AppID: "two", Name: "two", Domains: []string{d}})
		if skiff.ErrorCode(err) != skiff.ECONFLICT {
			t.Errorf("second app taking %s: %v, want a conflict", d, err)
		}
	}
	if tr.lookupID("two") != nil {
		t.Error("a refused SetApp changed the table")
	}
	tr.RemoveApp("id-one")
	if err := tr.SetApp(skiff.AppRoute{AppID: "two", Name: "two", Domains: []string{"shop.example.com"}}); err != nil {
		t.Errorf("domain not free after RemoveApp: %v", err)
	}
}

// D2: the app receives exactly our forwarded headers, whatever the client sent.
func TestForwardedHeadersAreOurs(t *testing.T) {
	tr := newTestRouter(t, nil)
	got := make(chan http.Header, 1)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && r.Header.Get("User-Agent") != "skiff-health-check" {
			got <- r.Header.Clone()
		}
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	port := tr.addr[strings.LastIndexByte(tr.addr, ':')+1:]
	resp := tr.raw(t, "GET / HTTP/1.1\r\nHost: app.skiff.test\r\n"+
		"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nX-Real-IP: 1.2.3.4\r\n"+
		"Forwarded: for=1.2.3.4;proto=https\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n"+
		"X-Forwarded-Port: 443\r\nX-Request-Id: client-chosen\r\n"+
		"Connection: close, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, X-Request-Id, X-Real-IP, X-Client-Hop\r\n"+
		"X-Client-Hop: 1\r\nTE: trailers\r\nProxy-Authorization: x\r\n\r\n")
	h := <-got
	want := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Real-Ip":         "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "app.skiff.test",
		"X-Forwarded-Port":  port,
	}
	for k, v := range want {
		if len(h[k]) != 1 || h[k][0] != v {
			t.Errorf("app got %s = %q, want exactly %q", k, h[k], v)
		}
	}
	for _, k := range []string{"Forwarded", "X-Client-Hop", "Proxy-Authorization"} {
		if _, ok := h[k]; ok {
			t.Errorf("client's %s reached the app: %q", k, h[k])
		}
	}
	if rs := h.Get("X-Request-Start"); !strings.HasPrefix(rs, "t=1") || len(rs) != 15 {
		t.Errorf("X-Request-Start = %q", rs)
	}
	if id := h.Get("X-Request-Id"); len(id) != 32 || id == "client-chosen" {
		t.Errorf("X-Request-Id = %q, want one of ours", id)
	}
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("response: %q", resp)
	}
	head := strings.ToLower(resp[:strings.Index(resp, "\r\n\r\n")])
	for _, hop := range []string{"x-secret", "keep-alive:", "proxy-authenticate"} {
		if strings.Contains(head, hop) {
			t.Errorf("hop-by-hop response header %q reached the client:\n%s", hop, head)
		}
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, echo("a")))
	c := tr.client()
	seen := map[string]bool{}
	for range 50 {
		_, body := get(t, c, "http://app.skiff.test/")
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "X-Request-Id: "); ok {
				if seen[v] {
					t.Fatalf("request id %s seen twice", v)
				}
				seen[v] = true
			}
		}
	}
	if len(seen) != 50 {
		t.Fatalf("%d request ids for 50 requests", len(seen))
	}
}

func TestNoInstances(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app"})
	resp, _ := get(t, tr.client(), "http://app.skiff.test/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
}

func TestMaintenance(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, echo("a"))
	route := skiff.AppRoute{AppID: "id-app", Name: "app"}
	tr.addApp(t, route, b)
	c := tr.client()
	route.Maintenance = true
	if err := tr.SetApp(route); err != nil {
		t.Fatal(err)
	}
	before := b.requests.Load()
	resp, body := get(t, c, "http://app.skiff.test/")
	if resp.StatusCode != 503 || !strings.Contains(body, "maintenance") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("maintenance: %d %q", resp.StatusCode, body)
	}
	route.MaintenancePage = "<h1>Back at noon</h1>"
	tr.SetApp(route)
	if _, body = get(t, c, "http://app.skiff.test/"); body != route.MaintenancePage {
		t.Errorf("custom page: %q", body)
	}
	if b.requests.Load() != before {
		t.Error("a request reached the app during maintenance")
	}
	route.Maintenance = false
	tr.SetApp(route)
	if resp, _ = get(t, c, "http://app.skiff.test/"); resp.StatusCode != 200 {
		t.Errorf("after maintenance: %d", resp.StatusCode)
	}
}

func TestRequestBodyCap(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	tr.addApp(t, skiff.AppRoute{Name: "app", MaxBodyBytes: 1000}, b)
	c := tr.client()
	post := func(body io.Reader, n int64) int {
		req, _ := http.NewRequest("POST", "http://app.skiff.test/", body)
		req.ContentLength = n
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(strings.NewReader(strings.Repeat("a", 1000)), 1000); code != 200 {
		t.Errorf("1000 bytes: %d", code)
	}
	if code := post(strings.NewReader(strings.Repeat("a", 1001)), 1001); code != 413 {
		t.Errorf("1001 bytes with Content-Length: %d, want 413", code)
	}
	if code := post(io.MultiReader(strings.NewReader(strings.Repeat("a", 5000))), -1); code != 413 {
		t.Errorf("5000 bytes chunked: %d, want 413", code)
	}
}

func TestDeployUnknownApp(t *testing.T) {
	tr := newTestRouter(t, nil)
	err := tr.Deploy(context.Background(), "nope", nil)
	if skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("Deploy of an unknown app: %v", err)
	}
	tr.addApp(t, skiff.AppRoute{Name: "app"})
	err = tr.Deploy(context.Background(), "id-app", []string{"localhost:80"})
	if skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("Deploy with a host name: %v", err)
	}
}

func TestLookupAllocations(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app", Domains: []string{"*.wild.example"}})
	tb := tr.table.Load()
	for _, h := range []string{"app.skiff.test", "x.wild.example", "nope.example"} {
		if n := testing.AllocsPerRun(100, func() { tb.lookup(h) }); n != 0 {
			t.Errorf("lookup(%s) allocates %v times", h, n)
		}
	}
}

// A connection accepted before Shutdown whose request arrives just after it
// began is answered, not dropped: net/http alone closes such a connection
// without a response (the client sees EOF).
func TestShutdownAnswersAcceptedConnections(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, echo("a")))
	c, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 5*time.Second, "the connection to be accepted", func() bool { return tr.fresh.Load() == 1 })
	done := make(chan error, 1)
	go func() { done <- tr.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // Shutdown has begun
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: app.skiff.test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request on a connection accepted before Shutdown: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("answer during Shutdown: %d", resp.StatusCode)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// New connections are no longer accepted.
	if c2, err := net.DialTimeout("tcp", tr.addr, time.Second); err == nil {
		c2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		c2.Write([]byte("GET / HTTP/1.1\r\nHost: app.skiff.test\r\n\r\n"))
		if _, err := http.ReadResponse(bufio.NewReader(c2), nil); err == nil {
			t.Error("a connection made after Shutdown was answered")
		}
		c2.Close()
	}
}
