// Package staticserver is the web server of static sites built by the
// static buildpack: it serves one directory on $PORT with caching headers
// that suit deploys (HTML revalidated, fingerprinted assets cached for a
// year, content-based ETags), index.html for directories, clean URLs, and
// the site's own 404.html. It never lists directories, never serves dot
// files, and cannot be led outside its root, symlinks included.
package staticserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Handler serves files from a root directory.
type Handler struct {
	// Fallback, when set, is the file a single-page app's client-side
	// routes get: a GET of a path with no file and no extension
	// (/dashboard/42, not /missing.js) answers it with 200, so the app's
	// router takes over. "" serves 404.html or a plain 404 instead.
	Fallback string

	root  *os.Root
	mu    sync.Mutex
	etags map[etagKey]string
}

type etagKey struct {
	name  string
	size  int64
	mtime time.Time
}

// New returns a Handler for dir. The caller closes it.
func New(dir string) (*Handler, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Handler{root: root, etags: map[etagKey]string{}}, nil
}

// Close releases the root directory.
func (h *Handler) Close() error { return h.root.Close() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	clean := path.Clean(upath)
	if hidden(clean) {
		h.notFound(w, r)
		return
	}
	name := strings.TrimPrefix(clean, "/")
	if name == "" {
		name = "."
	}
	fi, err := h.root.Stat(name)
	switch {
	case err == nil && fi.IsDir():
		if !strings.HasSuffix(upath, "/") {
			redirect(w, r, clean+"/")
			return
		}
		name = path.Join(name, "index.html")
	case err != nil && !strings.HasSuffix(upath, "/") && path.Ext(name) == "":
		// Clean URLs: /about serves about.html.
		name += ".html"
	case err == nil && strings.HasSuffix(upath, "/") && clean != "/":
		// A file asked for as a directory.
		h.notFound(w, r)
		return
	}
	if h.serveFile(w, r, name, http.StatusOK) {
		return
	}
	if h.Fallback != "" && path.Ext(clean) == "" && h.serveFile(w, r, h.Fallback, http.StatusOK) {
		return
	}
	h.notFound(w, r)
}

// hidden reports whether a path has a dot-segment (.git, .env): those are
// never served, except /.well-known/ (ACME, security.txt).
func hidden(clean string) bool {
	for i, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") && !(i == 1 && seg == ".well-known") {
			return true
		}
	}
	return false
}

func redirect(w http.ResponseWriter, r *http.Request, to string) {
	if q := r.URL.RawQuery; q != "" {
		to += "?" + q
	}
	// Absolute paths only: "//evil.example" must not leave the site.
	to = "/" + strings.TrimLeft(to, "/")
	http.Redirect(w, r, to, http.StatusMovedPermanently) //nolint:gosec // a path on this site only (above)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	if h.serveFile(w, r, "404.html", http.StatusNotFound) {
		return
	}
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// serveFile serves a regular file and reports whether there was one.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, name string, status int) bool {
	f, err := h.root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if status != http.StatusOK {
		// Error pages: no ranges or conditional answers, just the page.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			_, _ = io.Copy(w, f) // a client that went away
		}
		return true
	}
	etag, err := h.etag(name, fi, f)
	if err != nil {
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
		return true
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", cacheControl(name))
	// The zero time leaves out Last-Modified: image layers carry a fixed
	// timestamp, so it would never change between deploys and answer
	// If-Modified-Since with stale 304s. The ETag does the validating.
	http.ServeContent(w, r, fi.Name(), time.Time{}, f)
	return true
}

// etag returns a strong ETag from the file's content, computed once per
// file version; the image's files do not change while it runs.
func (h *Handler) etag(name string, fi fs.FileInfo, f *os.File) (string, error) {
	key := etagKey{name, fi.Size(), fi.ModTime()}
	h.mu.Lock()
	tag, ok := h.etags[key]
	h.mu.Unlock()
	if ok {
		return tag, nil
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tag = `"` + hex.EncodeToString(sum.Sum(nil)[:12]) + `"`
	h.mu.Lock()
	h.etags[key] = tag
	h.mu.Unlock()
	return tag, nil
}

// fingerprinted matches the names bundlers give content-hashed assets:
// app.3f2a9c1b.js, index-BxYz12_a.css, chunk-5f3e8a9b1c.mjs.
var fingerprinted = regexp.MustCompile(`[.-]([0-9a-f]{8,}|[A-Za-z0-9_]{8,})\.[A-Za-z0-9]+$`)

func cacheControl(name string) string {
	base := path.Base(name)
	switch ext := strings.ToLower(path.Ext(base)); {
	case ext == ".html" || ext == ".htm":
		return "no-cache"
	case isFingerprint(base):
		return "public, max-age=31536000, immutable"
	default:
		return "public, max-age=3600"
	}
}

func isFingerprint(base string) bool {
	m := fingerprinted.FindStringSubmatch(base)
	if m == nil {
		return false
	}
	// A hash has digits and letters; "settings" or "20240101" alone are words
	// or dates.
	h := m[1]
	return strings.ContainsAny(h, "0123456789") && strings.ContainsAny(strings.ToLower(h), "abcdefghijklmnopqrstuvwxyz")
}

// Addr returns the listen address for a PORT value.
func Addr(port string) (string, error) {
	if port == "" {
		return ":8080", nil
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("PORT=%q is not a port number", port)
		}
	}
	return ":" + port, nil
}
