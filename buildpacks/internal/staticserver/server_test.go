package staticserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func site(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"index.html":          "<h1>home</h1>",
		"about.html":          "<h1>about</h1>",
		"404.html":            "<h1>lost</h1>",
		"docs/index.html":     "<h1>docs</h1>",
		"app.3f2a9c1b.js":     "console.log(1)",
		"index-BxYz12_a.css":  "body{}",
		"app-settings.js":     "let s",
		"style.css":           "h1{}",
		".env":                "SECRET=1",
		".git/config":         "[core]",
		".well-known/acme":    "token",
		"docs/.hidden/x.html": "no",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte("outside"), 0o644)
	if err := os.Symlink(outside, filepath.Join(dir, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("style.css", filepath.Join(dir, "inside.css")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServe(t *testing.T) {
	h, err := New(site(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		target, wantBody, wantCache string
		wantStatus                  int
	}{
		{"/", "<h1>home</h1>", "no-cache", 200},
		{"/index.html", "<h1>home</h1>", "no-cache", 200},
		{"/about", "<h1>about</h1>", "no-cache", 200},
		{"/docs/", "<h1>docs</h1>", "no-cache", 200},
		{"/style.css", "h1{}", "public, max-age=3600", 200},
		{"/inside.css", "h1{}", "public, max-age=3600", 200},
		{"/app.3f2a9c1b.js", "console.log(1)", "public, max-age=31536000, immutable", 200},
		{"/index-BxYz12_a.css", "body{}", "public, max-age=31536000, immutable", 200},
		{"/app-settings.js", "let s", "public, max-age=3600", 200},
		{"/.well-known/acme", "token", "public, max-age=3600", 200},
		{"/missing", "<h1>lost</h1>", "no-cache", 404},
		{"/style.css/", "<h1>lost</h1>", "no-cache", 404},
		{"/.env", "<h1>lost</h1>", "no-cache", 404},
		{"/.git/config", "<h1>lost</h1>", "no-cache", 404},
		{"/docs/.hidden/x.html", "<h1>lost</h1>", "no-cache", 404},
		{"/x/../.env", "<h1>lost</h1>", "no-cache", 404},
		{"/escape.txt", "<h1>lost</h1>", "no-cache", 404},
		{"/../../../../etc/passwd", "<h1>lost</h1>", "no-cache", 404},
	} {
		resp := get(t, h, "GET", tc.target)
		if got := body(t, resp); resp.StatusCode != tc.wantStatus || got != tc.wantBody {
			t.Errorf("GET %s: %d %q, want %d %q", tc.target, resp.StatusCode, got, tc.wantStatus, tc.wantBody)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.wantCache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.target, got, tc.wantCache)
		}
		if resp.Header.Get("Last-Modified") != "" {
			t.Errorf("GET %s: Last-Modified set", tc.target)
		}
	}
}

func TestServeRedirectsAndMethods(t *testing.T) {
	h, err := New(site(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	resp := get(t, h, "GET", "/docs?x=1")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/docs/?x=1" {
		t.Errorf("GET /docs: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(t, h, "POST", "/")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp = get(t, h, "HEAD", "/style.css")
	if resp.StatusCode != 200 || body(t, resp) != "" || resp.Header.Get("Content-Length") != "4" {
		t.Errorf("HEAD /style.css: %d length %q", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestServeETag(t *testing.T) {
	dir := site(t)
	h, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	resp := get(t, h, "GET", "/style.css")
	etag := resp.Header.Get("ETag")
	if len(etag) != 26 {
		t.Fatalf("ETag %q", etag)
	}
	if resp := get(t, h, "GET", "/style.css", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match with the current ETag: %d, want 304", resp.StatusCode)
	}
	// A new deploy with new content must not be answered 304.
	os.WriteFile(filepath.Join(dir, "style.css"), []byte("h2{}x"), 0o644)
	resp = get(t, h, "GET", "/style.css", "If-None-Match", etag)
	if resp.StatusCode != 200 || body(t, resp) != "h2{}x" || resp.Header.Get("ETag") == etag {
		t.Errorf("changed file: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	resp = get(t, h, "GET", "/style.css", "Range", "bytes=1-2")
	if resp.StatusCode != 206 || body(t, resp) != "2{" {
		t.Errorf("range: %d", resp.StatusCode)
	}
}

func TestServeWithout404Page(t *testing.T) {
	dir := site(t)
	os.Remove(filepath.Join(dir, "404.html"))
	h, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	resp := get(t, h, "GET", "/nope")
	if resp.StatusCode != 404 || !strings.Contains(body(t, resp), "404 page not found") {
		t.Errorf("GET /nope: %d", resp.StatusCode)
	}
}

func TestAddr(t *testing.T) {
	for in, want := range map[string]string{"": ":8080", "5000": ":5000"} {
		if got, err := Addr(in); err != nil || got != want {
			t.Errorf("Addr(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := Addr("80; rm"); err == nil {
		t.Error("bad PORT accepted")
	}
}

// A single-page app's client-side routes get its index.html; missing assets
// and hidden files still get 404.
func TestServeFallback(t *testing.T) {
	h, err := New(site(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Fallback = "index.html"
	for _, tc := range []struct {
		target, wantBody string
		wantStatus       int
	}{
		{"/dashboard/42", "<h1>home</h1>", 200},
		{"/missing", "<h1>home</h1>", 200},
		{"/about", "<h1>about</h1>", 200},
		{"/style.css", "h1{}", 200},
		{"/missing.js", "<h1>lost</h1>", 404},
		{"/.env", "<h1>lost</h1>", 404},
		{"/../../etc/passwd", "<h1>home</h1>", 200},
	} {
		resp := get(t, h, "GET", tc.target)
		if got := body(t, resp); resp.StatusCode != tc.wantStatus || got != tc.wantBody {
			t.Errorf("GET %s: %d %q, want %d %q", tc.target, resp.StatusCode, got, tc.wantStatus, tc.wantBody)
		}
	}
	if resp := get(t, h, "GET", "/dashboard"); resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("the fallback page is cached: %q", resp.Header.Get("Cache-Control"))
	}
}
