package router

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 conformance. Go's HTTP/2 server (net/http's bundled copy and
// x/net/http2 alike, as of Go 1.26 and x/net v0.62) departs from RFC 9113
// in three places that h2spec checks; the router meets them itself:
//
//   - A frame larger than SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR
//     (§4.2). Go advertises and accepts frames of 1 MiB, and h2spec (like
//     any peer that assumes the protocol's default) sends a 20 KB HEADERS
//     frame expecting the error. The router advertises and enforces the
//     default, 16 KiB; Go then refuses anything larger itself. Bodies are
//     unaffected but for 9 bytes of framing per 16 KiB.
//   - A request carrying a connection-specific header field (Connection,
//     Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade) or a TE
//     other than "trailers" is malformed, a stream error PROTOCOL_ERROR
//     (§8.2.2). Go answers it with a 400 response, so the handler never sees
//     it, but the stream lives on as if the request had been well formed.
//   - A SETTINGS frame may name one setting more than once; the values are
//     processed in order (§6.5.3). Go hangs up on such a frame.
//
// Neither of the last two has a setting, so h2guard reads the client's
// frames before the server does (it is the net.Conn the server reads from):
// it keeps its own HPACK decoder in step with the server's, and
//
//   - a header block with a connection-specific field gets one more
//     header field, one whose upper-case name is invalid on the wire, in
//     a CONTINUATION frame of its own. The server's frame reader then
//     rejects the block with exactly the stream error the RFC asks for,
//     resets the stream, and keeps the connection and its HPACK state
//     (the added field is a literal without indexing: it changes no table);
//   - a SETTINGS frame that repeats a setting reaches the server with each
//     setting once: the last value, which is where processing in order
//     ends (or the first invalid value, so that the server still answers
//     with the error that value deserves).
//
// Anything it cannot follow (a frame sequence the server will reject
// anyway, an HPACK error, an oversized frame) makes it step aside: from then
// on bytes pass unread, and the server ends the connection as it would
// have.
//
// Cost: the client's header blocks are decoded twice (once here, once by
// the server) and its bytes copied once more; HTTP/1.1 is untouched.

// h2MaxFrameSize is SETTINGS_MAX_FRAME_SIZE: the protocol's default and least value.
const h2MaxFrameSize = 16 << 10

// h2HeaderTableSize is SETTINGS_HEADER_TABLE_SIZE, the HPACK dynamic table
// the server's decoder (and h2guard's) keeps: Go's default.
const h2HeaderTableSize = 4096

// configureHTTP2 returns the HTTP/2 server of the fast server whose
// net/http server is srv (its settings are srv's): x/net/http2, whose
// ServeConn takes any net.Conn, so that h2guard can come first
// (fastServer.serveH2). ConfigureServer hooks it to srv's Shutdown, which
// then ends HTTP/2 connections gracefully.
func configureHTTP2(srv *http.Server) (*http2.Server, error) {
	h2 := &http2.Server{
		MaxReadFrameSize:          h2MaxFrameSize,
		MaxDecoderHeaderTableSize: h2HeaderTableSize,
	}
	if err := http2.ConfigureServer(srv, h2); err != nil {
		return nil, err
	}
	return h2, nil
}

// h2GuardConn is the TLS connection as the HTTP/2 server sees it: reads go
// through the guard, writes through a batchWriter (h2batch.go); the rest,
// ConnectionState included (the server checks the TLS version and
// cipher), is the TLS connection's.
type h2GuardConn struct {
	*tls.Conn
	r *h2guard
	w *batchWriter // nil: writes go to the TLS connection as they come
}

func newH2GuardConn(tc *tls.Conn) *h2GuardConn {
	c := &h2GuardConn{Conn: tc, r: newH2Guard(tc)}
	if h2Batch {
		c.w = newBatchWriter(tc, tc.SetWriteDeadline)
	}
	return c
}

// h2Batch turns batchWriter on (bench/router's variants turn it off, to
// measure without it in the same run).
var h2Batch = true

func (c *h2GuardConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *h2GuardConn) Write(p []byte) (int, error) {
	if c.w == nil {
		return c.Conn.Write(p)
	}
	return c.w.Write(p)
}

// Close hands on what is pending (within closeFlush), then closes.
func (c *h2GuardConn) Close() error {
	if c.w != nil {
		c.w.close()
	}
	return c.Conn.Close()
}

var _ net.Conn = (*h2GuardConn)(nil)

// Frame types and flags h2guard looks at (RFC 9113 §6).
const (
	h2FrameHeaders      = 0x1
	h2FrameSettings     = 0x4
	h2FrameContinuation = 0x9

	h2FlagAck        = 0x1 // SETTINGS
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20

	h2FrameHeaderLen = 9
	h2MaxSettings    = 100 // the server refuses larger SETTINGS frames anyway
)

// h2Malformed is the header field added to a malformed header block: a
// literal without indexing (0x00) whose name, being upper case, the
// server's frame reader refuses with a stream error PROTOCOL_ERROR.
var h2Malformed = func() []byte {
	const name, value = "Connection-Specific-Field", "malformed"
	b := []byte{0x00, byte(len(name))}
	b = append(b, name...)
	b = append(b, byte(len(value)))
	return append(b, value...)
}()

// h2guard reads an HTTP/2 client's byte stream (preface, then frames) from
// src and hands it on, amended as the comment above says.
type h2guard struct {
	src     io.Reader
	preface int    // preface bytes still to pass through
	out     []byte // bytes ready for the server
	outBuf  []byte
	pass    int   // payload bytes of the current frame to copy through unread
	err     error // from src, once out is drained
	off     bool  // stepped aside: everything passes unread

	dec     *hpack.Decoder
	inBlock bool   // a header block is open (no END_HEADERS yet)
	stream  uint32 // its stream
	bad     bool   // it has a connection-specific field
	payload []byte
}

func newH2Guard(src io.Reader) *h2guard {
	g := &h2guard{src: src, preface: len(http2.ClientPreface)}
	g.dec = hpack.NewDecoder(h2HeaderTableSize, g.field)
	return g
}

// field is the decoder's emit function: it marks what RFC 9113 §8.2.2 calls
// malformed. Names on the wire are lower case (the server refuses others).
func (g *h2guard) field(f hpack.HeaderField) {
	switch f.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		g.bad = true
	case "te":
		if f.Value != "trailers" {
			g.bad = true
		}
	}
}

func (g *h2guard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		if g.pass > 0 || g.off {
			n := len(p)
			if !g.off && n > g.pass {
				n = g.pass
			}
			n, err := g.src.Read(p[:n])
			g.pass -= n
			return n, err
		}
		if g.err != nil {
			return 0, g.err
		}
		g.next()
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// next reads what comes next in the stream (the preface, or one frame's
// header and, for the frames it inspects, its payload) and queues it.
func (g *h2guard) next() {
	if g.preface > 0 {
		g.pass, g.preface = g.preface, 0
		return
	}
	g.outBuf = g.outBuf[:0]
	var hdr [h2FrameHeaderLen]byte
	n, err := io.ReadFull(g.src, hdr[:])
	if err != nil {
		g.queue(hdr[:n])
		g.err = err
		return
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	typ, flags := hdr[3], hdr[4]
	stream := binary.BigEndian.Uint32(hdr[5:]) & (1<<31 - 1)
	inspect := length <= h2MaxFrameSize &&
		(typ == h2FrameHeaders || typ == h2FrameContinuation ||
			typ == h2FrameSettings && flags&h2FlagAck == 0 && stream == 0 && length%6 == 0 && length <= 6*h2MaxSettings)
	if !inspect || g.inBlock && typ != h2FrameContinuation {
		// A frame the server reads as it is. (One inside an open header
		// block, or a header block fragment too large to read, is a
		// connection error for the server: step aside.)
		g.off = g.off || g.inBlock || typ == h2FrameHeaders || typ == h2FrameContinuation
		g.queue(hdr[:])
		g.pass = length
		return
	}
	if cap(g.payload) < length {
		g.payload = make([]byte, length)
	}
	payload := g.payload[:length]
	if n, err = io.ReadFull(g.src, payload); err != nil {
		g.queue(hdr[:])
		g.queue(payload[:n])
		g.err = err
		return
	}
	if typ == h2FrameSettings {
		payload = dedupSettings(payload)
		hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload)) //nolint:gosec // a frame's 24-bit length, byte by byte
		g.queue(hdr[:])
		g.queue(payload)
		return
	}
	if !g.headerBlock(typ, flags, stream, payload) {
		g.off = true
		g.queue(hdr[:])
		g.queue(payload)
		return
	}
	if flags&h2FlagEndHeaders != 0 && g.bad {
		hdr[4] &^= h2FlagEndHeaders
		g.queue(hdr[:])
		g.queue(payload)
		l := len(h2Malformed)
		g.queue([]byte{byte(l >> 16), byte(l >> 8), byte(l), h2FrameContinuation, h2FlagEndHeaders, //nolint:gosec // a frame header, byte by byte
			byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}) //nolint:gosec // as above
		g.queue(h2Malformed)
		return
	}
	g.queue(hdr[:])
	g.queue(payload)
}

// headerBlock decodes one HEADERS or CONTINUATION frame's fragment. It
// returns false for what the server will refuse (a connection error): then
// the decoders may disagree, and h2guard steps aside.
func (g *h2guard) headerBlock(typ, flags byte, stream uint32, p []byte) bool {
	if typ == h2FrameHeaders {
		if g.inBlock || stream == 0 {
			return false
		}
		if flags&h2FlagPadded != 0 {
			if len(p) < 1 || int(p[0]) > len(p)-1 {
				return false
			}
			p = p[1 : len(p)-int(p[0])]
		}
		if flags&h2FlagPriority != 0 {
			if len(p) < 5 {
				return false
			}
			p = p[5:]
		}
		g.inBlock, g.stream, g.bad = true, stream, false
	} else if !g.inBlock || stream != g.stream {
		return false
	}
	if _, err := g.dec.Write(p); err != nil {
		return false
	}
	if flags&h2FlagEndHeaders != 0 {
		g.inBlock = false
		if err := g.dec.Close(); err != nil {
			return false
		}
	}
	return true
}

func (g *h2guard) queue(b []byte) {
	g.outBuf = append(g.outBuf, b...)
	g.out = g.outBuf
}

// dedupSettings returns a SETTINGS payload (6-byte entries) with each
// setting once, in place: the last value of each, or its first invalid one.
// A payload without repeats comes back unchanged.
func dedupSettings(p []byte) []byte {
	n := len(p) / 6
	repeated := false
	for i := 0; i < n && !repeated; i++ {
		for j := i + 1; j < n; j++ {
			if p[i*6] == p[j*6] && p[i*6+1] == p[j*6+1] {
				repeated = true
				break
			}
		}
	}
	if !repeated {
		return p
	}
	entry := func(i int) http2.Setting {
		return http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(p[i*6:])), Val: binary.BigEndian.Uint32(p[i*6+2:])}
	}
	// For each entry, whether it is the one kept for its setting.
	keep := make([]bool, n)
	for i := range n {
		id := entry(i).ID
		chosen := -1
		for j := range n {
			if s := entry(j); s.ID == id {
				if s.Valid() != nil {
					chosen = j
					break
				}
				chosen = j
			}
		}
		keep[i] = chosen == i
	}
	out := p[:0]
	for i := range n {
		if keep[i] {
			out = append(out, p[i*6:i*6+6]...)
		}
	}
	return out
}
