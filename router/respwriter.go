package router

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// respWriter records status and size for the access log and compresses when
// modifyResponse chose a coding. Unwrap keeps Flush, Hijack and deadlines
// reachable through http.ResponseController.
type respWriter struct {
	w        http.ResponseWriter
	st       *reqState
	status   int
	bytes    int64
	compress coding // chosen by modifyResponse
	enc      encoder
}

// coding is a content coding the router compresses with.
type coding uint8

const (
	identity coding = iota
	codingGzip
	codingZstd
)

func (c coding) String() string { return [...]string{"", "gzip", "zstd"}[c] }

// encoder is what gzip.Writer and zstd.Encoder have in common.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
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
	if code >= 200 {
		// The response goes on as the app sent it: net/http would add a
		// Content-Type of its own guessing where the app gave none (the
		// fast path never does; nor does nginx).
		if h := rw.w.Header(); h["Content-Type"] == nil {
			h["Content-Type"] = nil
		}
	}
	rw.w.WriteHeader(code)
}

func (rw *respWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.compress != identity {
		if rw.enc == nil {
			rw.enc = getEncoder(rw.compress, countingWriter{rw})
		}
		return rw.enc.Write(p)
	}
	n, err := rw.w.Write(p)
	rw.bytes += int64(n)
	return n, err
}

func (rw *respWriter) Flush() {
	if rw.enc != nil {
		_ = rw.enc.Flush() // its writes to the client fail the same way on the next Write
	}
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// finish ends the compressed stream, if any.
func (rw *respWriter) finish() {
	if rw.enc != nil {
		_ = rw.enc.Close() // the stream's end, to a client that may have gone: the access log has the bytes
		putEncoder(rw.compress, rw.enc)
		rw.enc = nil
	}
}

// countingWriter writes compressed bytes to the client and counts them.
type countingWriter struct{ rw *respWriter }

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.rw.w.Write(p)
	c.rw.bytes += int64(n)
	return n, err
}

var encoders [3]sync.Pool

// getEncoder returns a pooled encoder writing to w. gzip at level 5 and zstd
// at its default level cost little CPU for most of the gain; zstd's window
// stays within what browsers accept (RFC 9659: 8 MiB) and its memory small.
func getEncoder(c coding, w io.Writer) encoder {
	if e, ok := encoders[c].Get().(encoder); ok {
		e.Reset(w)
		return e
	}
	if c == codingZstd {
		e, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		return e
	}
	z, _ := gzip.NewWriterLevel(w, 5)
	return z
}

func putEncoder(c coding, e encoder) {
	e.Reset(io.Discard)
	encoders[c].Put(e)
}

// negotiate picks the coding for a client's Accept-Encoding: zstd when it is
// accepted at least as much as gzip, else gzip, else none.
func negotiate(h http.Header) coding {
	var n negotiation
	for _, v := range h["Accept-Encoding"] {
		n.add(v)
	}
	return n.result()
}

// negotiation collects the q-values of one or more Accept-Encoding values.
type negotiation struct{ qGzip, qZstd float64 }

// add takes one Accept-Encoding value. (A coding never named keeps q = 0:
// not accepted, as q=0 says.)
func (n *negotiation) add(v string) {
	for part := range strings.SplitSeq(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if p := strings.TrimSpace(params); p != "" {
			k, val, _ := strings.Cut(strings.ReplaceAll(p, " ", ""), "=")
			if !strings.EqualFold(k, "q") {
				continue
			}
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		name = strings.TrimSpace(name)
		switch {
		case strings.EqualFold(name, "gzip"):
			n.qGzip = q
		case strings.EqualFold(name, "zstd"):
			n.qZstd = q
		}
	}
}

func (n *negotiation) result() coding {
	switch {
	case n.qZstd > 0 && n.qZstd >= n.qGzip:
		return codingZstd
	case n.qGzip > 0:
		return codingGzip
	}
	return identity
}

// minCompressSize: below it gzip's header and CPU cost more than they save.
const minCompressSize = 1024

// shouldCompress reports whether a response is worth compressing: a
// successful, text-like body the app has not encoded itself.
func shouldCompress(resp *http.Response) bool {
	h := resp.Header
	return compressibleResponse(resp.StatusCode, resp.Request.Method == http.MethodHead, h.Get("Content-Encoding") != "",
		h.Get("Content-Range") != "", resp.ContentLength, h.Get("Cache-Control"), h.Get("Content-Type"))
}

// compressibleResponse is shouldCompress over the parts of a response it
// looks at (contentLength < 0: unknown).
func compressibleResponse(status int, head, encoded, ranged bool, contentLength int64, cacheControl, contentType string) bool {
	if status != http.StatusOK || head || encoded || ranged {
		return false
	}
	if contentLength >= 0 && contentLength < minCompressSize {
		return false
	}
	if strings.Contains(cacheControl, "no-transform") {
		return false
	}
	return compressible(contentType)
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
