package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/skiffhq/skiff"
)

// h2client is a raw HTTP/2 client over TLS: frames as the test writes them.
type h2client struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	buf  bytes.Buffer
}

// newH2Router serves one app over TLS and returns a raw HTTP/2 client
// connected to it, past the SETTINGS exchange.
func newH2Router(t *testing.T, h http.HandlerFunc) *h2client {
	t.Helper()
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	c, k := ca.issue(t, "app.skiff.test")
	if err := tr.SetDefaultCertificate(cat(c, k)); err != nil {
		t.Fatal(err)
	}
	tr.addApp(t, skiff.AppRoute{Name: "app", NoRedirect: true}, startBackend(t, h))
	return dialH2(t, tr.tls)
}

func dialH2(t *testing.T, addr string) *h2client {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "app.skiff.test", InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &h2client{t: t, conn: conn, fr: http2.NewFramer(conn, conn)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	io.WriteString(conn, http2.ClientPreface)
	c.fr.WriteSettings()
	for local, remote := false, false; !local || !remote; {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok {
			if sf.IsAck() {
				local = true
			} else {
				remote = true
				if v, _ := sf.Value(http2.SettingMaxFrameSize); v != h2MaxFrameSize {
					t.Errorf("SETTINGS_MAX_FRAME_SIZE %d, want %d", v, h2MaxFrameSize)
				}
				c.fr.WriteSettingsAck()
			}
		}
	}
	return c
}

// block encodes a GET (or POST) of / followed by extra fields.
func (c *h2client) block(method string, extra ...string) []byte {
	c.buf.Reset()
	fields := []string{":method", method, ":scheme", "https", ":path", "/", ":authority", "app.skiff.test"}
	fields = append(fields, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(c.buf.Bytes())
}

// outcome reads frames until the stream is answered or reset, or the
// connection ends: "status 200", "reset PROTOCOL_ERROR", "goaway FRAME_SIZE_ERROR".
func (c *h2client) outcome(stream uint32) string {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return "read error: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == stream {
				return "status " + f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				return "reset " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String()
		}
	}
}

// Requests RFC 9113 §8.2.2 calls malformed end in a stream error, not a
// response; the connection and its HPACK state live on (each next request
// reuses the table entries the rejected one made).
func TestH2ConnectionSpecificFields(t *testing.T) {
	c := newH2Router(t, echo("a"))
	stream := uint32(1)
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{[]string{"connection", "keep-alive"}, "reset PROTOCOL_ERROR"},
		{[]string{"x-fine", "yes"}, "status 200"},
		{[]string{"keep-alive", "timeout=5"}, "reset PROTOCOL_ERROR"},
		{[]string{"proxy-connection", "keep-alive"}, "reset PROTOCOL_ERROR"},
		{[]string{"transfer-encoding", "chunked"}, "reset PROTOCOL_ERROR"},
		{[]string{"upgrade", "websocket"}, "reset PROTOCOL_ERROR"},
		{[]string{"te", "trailers, deflate"}, "reset PROTOCOL_ERROR"},
		{[]string{"te", "gzip"}, "reset PROTOCOL_ERROR"},
		{[]string{"te", "trailers"}, "status 200"},
		{[]string{"x-fine", "yes", "x-also", "fine"}, "status 200"},
	} {
		c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: c.block("GET", tc.extra...), EndStream: true, EndHeaders: true})
		if got := c.outcome(stream); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.extra, got, tc.want)
		}
		stream += 2
	}

	// Split across CONTINUATION frames, padded, with a priority: the same.
	b := c.block("GET", "x-pad", strings.Repeat("p", 100), "connection", "close")
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: b[:7], EndStream: true, PadLength: 9,
		Priority: http2.PriorityParam{Weight: 10}})
	c.fr.WriteContinuation(stream, false, b[7:50])
	c.fr.WriteContinuation(stream, true, b[50:])
	if got := c.outcome(stream); got != "reset PROTOCOL_ERROR" {
		t.Errorf("split header block: %s", got)
	}
	stream += 2

	// Trailers are a header block too.
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: c.block("POST"), EndHeaders: true})
	c.fr.WriteData(stream, false, []byte("body"))
	c.buf.Reset()
	c.enc.WriteField(hpack.HeaderField{Name: "connection", Value: "close"})
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: bytes.Clone(c.buf.Bytes()), EndStream: true, EndHeaders: true})
	if got := c.outcome(stream); got != "reset PROTOCOL_ERROR" {
		t.Errorf("connection field in trailers: %s", got)
	}
	stream += 2
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: c.block("GET"), EndStream: true, EndHeaders: true})
	if got := c.outcome(stream); got != "status 200" {
		t.Errorf("after all that, a plain GET: %s", got)
	}
}

// A SETTINGS frame may repeat a setting (RFC 9113 §6.5.3): processed in
// order, acknowledged. An invalid value among the repeats is still the
// error it deserves.
func TestH2RepeatedSettings(t *testing.T) {
	body := strings.Repeat("x", 100)
	c := newH2Router(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	for acked := false; !acked; {
		f, err := c.fr.ReadFrame()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			acked = f.IsAck()
		case *http2.WindowUpdateFrame: // the server's, sent when it likes
		default:
			t.Fatalf("want a SETTINGS ACK, got %v %v", f, err)
		}
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block("GET"), EndStream: true, EndHeaders: true})
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*http2.DataFrame); ok {
			if n := len(d.Data()); n != 1 {
				t.Errorf("first DATA frame of %d bytes, want 1 (the last SETTINGS_INITIAL_WINDOW_SIZE)", n)
			}
			break
		}
	}

	for _, tc := range []struct {
		settings []http2.Setting
		want     string
	}{
		{[]http2.Setting{{ID: http2.SettingEnablePush, Val: 2}, {ID: http2.SettingEnablePush, Val: 0}}, "goaway PROTOCOL_ERROR"},
		{[]http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1 << 31}, {ID: http2.SettingInitialWindowSize, Val: 10}}, "goaway FLOW_CONTROL_ERROR"},
	} {
		c := newH2Router(t, echo("a"))
		c.fr.WriteSettings(tc.settings...)
		if got := c.outcome(1); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.settings, got, tc.want)
		}
	}
}

// Frames larger than SETTINGS_MAX_FRAME_SIZE (16 KiB, advertised) are a
// connection error (RFC 9113 §4.2); a large header block in frames of the
// right size is served.
func TestH2FrameSize(t *testing.T) {
	c := newH2Router(t, echo("a"))
	b := c.block("GET", "x-a", strings.Repeat("~", 12000), "x-b", strings.Repeat("~", 12000), "x-c", strings.Repeat("~", 12000))
	if len(b) <= 2*h2MaxFrameSize {
		// "~" is longer Huffman-coded than not: the block stays this long.
		t.Fatalf("header block of %d bytes", len(b))
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:h2MaxFrameSize], EndStream: true})
	c.fr.WriteContinuation(1, false, b[h2MaxFrameSize:2*h2MaxFrameSize])
	c.fr.WriteContinuation(1, true, b[2*h2MaxFrameSize:])
	if got := c.outcome(1); got != "status 200" {
		t.Errorf("header block in three frames: %s", got)
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.block("GET", "x-a", strings.Repeat("~", 20000)), EndStream: true, EndHeaders: true})
	if got := c.outcome(3); got != "goaway FRAME_SIZE_ERROR" {
		t.Errorf("a 20 KB HEADERS frame: %s, want goaway FRAME_SIZE_ERROR", got)
	}
}

func TestDedupSettings(t *testing.T) {
	enc := func(s ...http2.Setting) []byte {
		var b []byte
		for _, x := range s {
			b = binary.BigEndian.AppendUint16(b, uint16(x.ID))
			b = binary.BigEndian.AppendUint32(b, x.Val)
		}
		return b
	}
	iws, push, mfs := http2.SettingInitialWindowSize, http2.SettingEnablePush, http2.SettingMaxFrameSize
	for _, tc := range []struct{ in, want []http2.Setting }{
		{nil, nil},
		{[]http2.Setting{{ID: iws, Val: 5}, {ID: push, Val: 0}}, []http2.Setting{{ID: iws, Val: 5}, {ID: push, Val: 0}}},
		{[]http2.Setting{{ID: iws, Val: 100}, {ID: iws, Val: 1}}, []http2.Setting{{ID: iws, Val: 1}}},
		{[]http2.Setting{{ID: iws, Val: 100}, {ID: push, Val: 0}, {ID: iws, Val: 1}, {ID: mfs, Val: 20000}}, []http2.Setting{{ID: push, Val: 0}, {ID: iws, Val: 1}, {ID: mfs, Val: 20000}}},
		{[]http2.Setting{{ID: push, Val: 1}, {ID: push, Val: 3}, {ID: push, Val: 0}, {ID: push, Val: 4}}, []http2.Setting{{ID: push, Val: 3}}},
	} {
		if got := dedupSettings(enc(tc.in...)); !bytes.Equal(got, enc(tc.want...)) {
			t.Errorf("%v: got % x, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzH2Guard feeds arbitrary client byte streams through the guard: it
// never fails, and what it changes is only what it is meant to change. The
// oracle reads the input with x/net's own frame reader: when that finds no
// SETTINGS frame with a repeat and no header block with a
// connection-specific field, the server must get the input byte for byte.
func FuzzH2Guard(f *testing.F) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	var enc *hpack.Encoder
	b.WriteString(http2.ClientPreface)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	f.Add(bytes.Clone(b.Bytes()))
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	f.Add(bytes.Clone(b.Bytes()))
	// The header blocks after one SETTINGS frame without repeats, so that
	// the oracle holds the guard to passing x-ok's block byte for byte.
	b.Reset()
	b.WriteString(http2.ClientPreface)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	for _, extra := range [][2]string{{"x-ok", "1"}, {"connection", "close"}, {"te", "gzip"}} {
		var blk bytes.Buffer
		enc = hpack.NewEncoder(&blk)
		for _, kv := range [][2]string{{":method", "GET"}, {":path", "/"}, {":scheme", "https"}, {":authority", "a"}, extra} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk.Bytes()[:3], PadLength: 2})
		fr.WriteContinuation(1, true, blk.Bytes()[3:])
		f.Add(bytes.Clone(b.Bytes()))
	}
	fr.WriteData(1, true, []byte("data"))
	f.Add(bytes.Clone(b.Bytes()))

	f.Fuzz(func(t *testing.T, in []byte) {
		g := newH2Guard(bytes.NewReader(in))
		var out []byte
		buf := make([]byte, 7) // small reads, as the server's frame reader does
		for {
			n, err := g.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("read error %v", err)
				}
				break
			}
			if len(out) > 2*len(in)+len(h2Malformed)+h2FrameHeaderLen {
				t.Fatalf("%d bytes out of %d in", len(out), len(in))
			}
		}
		r := h2Read(in)
		if r.bad {
			return
		}
		// Byte for byte up to where the server's reader stops; where it
		// stops by refusing a frame (a connection error, so the server
		// hangs up), the guard may amend that frame as long as the server
		// still refuses it in the same place the same way.
		upTo := r.end
		if r.refused != nil {
			upTo = r.lastFrame
		}
		if !bytes.HasPrefix(out, in[:upTo]) || r.refused == nil && r.end == len(in) && len(out) != len(in) {
			t.Fatalf("changed a stream that needed nothing (its first %d bytes):\n in % x\nout % x", upTo, in, out)
		}
		if r.refused == nil {
			return
		}
		if o := h2Read(out); o.refused == nil || *o.refused != *r.refused || o.frames != r.frames {
			t.Fatalf("the server refuses the input at frame %d with %v, the guard's output at frame %d with %v:\n in % x\nout % x",
				r.frames, *r.refused, o.frames, o.refused, in, out)
		}
	})
}

// h2Reading is what the server's frame reader makes of a client stream.
type h2Reading struct {
	bad       bool                   // a SETTINGS frame repeats a setting, or a header block has a connection-specific field (or one the reader cannot decode)
	frames    int                    // frames read before it stops
	lastFrame int                    // where the last frame it read (or refused) begins
	end       int                    // where it stops: the stream's end, or where the server hangs up
	refused   *http2.ConnectionError // what it stops with, when it refuses a frame
}

// h2Read reads a client stream the way the server does.
func h2Read(in []byte) (r h2Reading) {
	if !bytes.HasPrefix(in, []byte(http2.ClientPreface)) {
		return r
	}
	cr := &countingReader{r: bytes.NewReader(in[len(http2.ClientPreface):])}
	fr := http2.NewFramer(nil, cr)
	fr.SetMaxReadFrameSize(h2MaxFrameSize)
	fr.ReadMetaHeaders = hpack.NewDecoder(h2HeaderTableSize, nil)
	for ; ; r.frames++ {
		r.lastFrame = len(http2.ClientPreface) + cr.n // the reader reads whole frames, unbuffered
		f, err := fr.ReadFrame()
		var se http2.StreamError
		if errors.As(err, &se) {
			r.bad = true // an invalid field, which may hide a connection-specific one
			continue
		}
		if err != nil {
			r.end = len(http2.ClientPreface) + cr.n
			if ce := (http2.ConnectionError)(0); errors.As(err, &ce) {
				r.refused = &ce
			}
			return r
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.HasDuplicates() {
				r.bad = true
			}
		case *http2.MetaHeadersFrame:
			for _, hf := range f.Fields {
				switch hf.Name {
				case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
					r.bad = true
				case "te":
					r.bad = r.bad || hf.Value != "trailers"
				}
			}
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// Bodiless GET and HEAD over HTTP/2 go to the app without ReverseProxy
// (serveDirect): the same answers as on the other paths — compression,
// streams flushed as they come, HEAD, trailers, a cut body reset rather
// than passed as whole, the app's request ended when the client leaves.
func TestH2Direct(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	c, k := ca.issue(t, "app.skiff.test")
	ended := make(chan struct{}, 1)
	tr.addApp(t, skiff.AppRoute{Name: "app", NoRedirect: true, HSTS: true}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/text":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "2400")
			w.Header().Set("Etag", `"v1"`)
			io.WriteString(w, strings.Repeat("compress me ", 200))
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(300 * time.Millisecond)
			}
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		case "/cut":
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "short")
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		case "/hang":
			<-r.Context().Done()
			ended <- struct{}{}
		default:
			fmt.Fprintf(w, "%s %s fwd=%s", r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-Proto"))
		}
	}))
	if err := tr.SetCertificate("id-app", cat(c, k)); err != nil {
		t.Fatal(err)
	}
	client := tr.tlsClient(ca.pool, true)
	get := func(method, path string, hdr ...string) (*http.Response, string, error) {
		req, _ := http.NewRequest(method, "https://app.skiff.test"+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	resp, body, err := get("GET", "/p?a=1&b=%2F")
	if err != nil || resp.ProtoMajor != 2 || body != "GET /p?a=1&b=%2F fwd=https" || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("GET: %v %v %q %v", resp, err, body, err)
	}
	resp, body, err = get("GET", "/text", "Accept-Encoding", "gzip")
	if err != nil || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Etag") != `W/"v1"` || strings.Contains(body, "compress me") {
		t.Errorf("compressed: %v %v %v", resp.Header, err, len(body))
	}
	if resp, _, err = get("HEAD", "/text"); err != nil || resp.ContentLength != 2400 {
		t.Errorf("HEAD: %v %v", resp, err)
	}
	if resp, body, err = get("GET", "/trailer"); err != nil || body != "body" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer: %v %q %v", resp.Trailer, body, err)
	}
	if _, _, err = get("GET", "/cut"); err == nil {
		t.Error("a body the app cut reached the client as whole")
	}
	// The first event arrives before the app sends the next.
	req, _ := http.NewRequest("GET", "https://app.skiff.test/stream", nil)
	start := time.Now()
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if line != "data: 0\n" || time.Since(start) > 250*time.Millisecond {
		t.Errorf("first event %q after %v", line, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", "https://app.skiff.test/hang", nil)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	client.Do(req)
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Error("the app's request went on after the client left")
	}
}
