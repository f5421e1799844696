package router

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"sync"
)

// respWriter records status and size for the access log and compresses when
// modifyResponse chose to. Unwrap keeps Flush, Hijack and deadlines reachable
// through http.ResponseController.
type respWriter struct {
	w        http.ResponseWriter
	st       *reqState
	status   int
	bytes    int64
	compress bool
	gz       *gzip.Writer
}

func (rw *respWriter) Header() http.Header         { return rw.w.Header() }
func (rw *respWriter) Unwrap() http.ResponseWriter { return rw.w }

func (rw *respWriter) WriteHeader(code int) {
	if code >= 200 && rw.status >= 200 {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		rw.status = code
	}
	rw.w.WriteHeader(code)
}

func (rw *respWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.compress {
		if rw.gz == nil {
			rw.gz = getGzip(countingWriter{rw})
		}
		return rw.gz.Write(p)
	}
	n, err := rw.w.Write(p)
	rw.bytes += int64(n)
	return n, err
}

func (rw *respWriter) Flush() {
	if rw.gz != nil {
		rw.gz.Flush()
	}
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// finish ends the gzip stream, if any.
func (rw *respWriter) finish() {
	if rw.gz != nil {
		rw.gz.Close()
		putGzip(rw.gz)
		rw.gz = nil
	}
}

// countingWriter writes compressed bytes to the client and counts them.
type countingWriter struct{ rw *respWriter }

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.rw.w.Write(p)
	c.rw.bytes += int64(n)
	return n, err
}

var gzipPool sync.Pool

func getGzip(w io.Writer) *gzip.Writer {
	if z, ok := gzipPool.Get().(*gzip.Writer); ok {
		z.Reset(w)
		return z
	}
	z, _ := gzip.NewWriterLevel(w, 5)
	return z
}

func putGzip(z *gzip.Writer) {
	z.Reset(io.Discard)
	gzipPool.Put(z)
}

// acceptsGzip reports whether the client listed gzip with a non-zero q.
func acceptsGzip(h http.Header) bool {
	for _, v := range h["Accept-Encoding"] {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			params = strings.ReplaceAll(params, " ", "")
			return !(strings.HasPrefix(params, "q=0") && strings.Trim(params[3:], ".0") == "")
		}
	}
	return false
}

// minCompressSize: below it gzip's header and CPU cost more than they save.
const minCompressSize = 1024

// shouldCompress reports whether a response is worth compressing: a
// successful, text-like body the app has not encoded itself.
func shouldCompress(resp *http.Response) bool {
	if resp.StatusCode != http.StatusOK || resp.Request.Method == http.MethodHead {
		return false
	}
	h := resp.Header
	if h.Get("Content-Encoding") != "" || h.Get("Content-Range") != "" {
		return false
	}
	if resp.ContentLength >= 0 && resp.ContentLength < minCompressSize {
		return false
	}
	if strings.Contains(h.Get("Cache-Control"), "no-transform") {
		return false
	}
	return compressible(h.Get("Content-Type"))
}

func compressible(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	switch {
	case ct == "text/event-stream":
		return false // streams must reach the client event by event
	case strings.HasPrefix(ct, "text/"):
		return true
	}
	switch ct {
	case "application/json", "application/javascript", "application/xml",
		"application/xhtml+xml", "application/rss+xml", "application/atom+xml",
		"application/manifest+json", "application/ld+json", "application/wasm",
		"image/svg+xml", "application/x-javascript", "application/graphql-response+json":
		return true
	}
	return strings.HasSuffix(ct, "+json") || strings.HasSuffix(ct, "+xml")
}
