package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// The fast path's reading of an app's response. An app is a tenant: what it
// sends is checked before any of it reaches a client, and the response is
// framed anew for the client (its Content-Length copied exactly, or chunks
// re-made), so that no app can make a connection that other apps' requests
// share (a CDN's, say) read a response that is not there.

// respKind tells apart the response fields the router looks at.
type respKind uint8

const (
	rkOther respKind = iota
	rkContentLength
	rkTransferEncoding
	rkConnection
	rkHop
	rkTrailer
	rkDate
	rkHSTS
	rkContentEncoding
	rkContentRange
	rkCacheControl
	rkContentType
	rkETag
)

// h1Response is an app's response head, copied out of the upstream
// connection's buffer.
type h1Response struct {
	head          []byte // the raw head: in br's buffer, or in copied
	copied        []byte // reused between responses
	unread        int    // bytes of head still in br's buffer (consume)
	status        int
	fields        []h1Field // names and values point into head; kind is unused
	kinds         []respKind
	contentLength int64 // -1: not given
	chunked       bool
	close         bool // the app ends the connection after it
	bodyless      bool // no body follows (HEAD, 1xx, 204, 304)
}

var errBadResponse = errors.New("malformed response from the app")

// read reads the next final response head from br (1xx ones are dropped,
// 101 is refused: the fast path never asks for an upgrade). anything
// reports whether any byte came, for the stale-connection retry. When the
// whole head came in one read (the usual case) it is parsed where it lies
// in br's buffer, and stays there until consume: no read of br may come
// between.
func (r *h1Response) read(br *bufio.Reader, head bool) (anything bool, err error) {
	for {
		if _, err := br.Peek(1); err != nil {
			return anything, err
		}
		anything = true
		buf, _ := br.Peek(br.Buffered())
		if end := bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
			r.head, r.unread = buf[:end+4], end+4
		} else {
			// In pieces, or with bare LFs: line by line, copied.
			r.copied, r.unread = r.copied[:0], 0
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					if err == bufio.ErrBufferFull {
						return true, errHeaderTooLarge
					}
					return true, err
				}
				if r.copied = append(r.copied, line...); len(r.copied) > 64<<10 {
					return true, errHeaderTooLarge
				}
				if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
					break
				}
			}
			r.head = r.copied
		}
		if err := r.parse(head); err != nil {
			return true, err
		}
		if r.status >= 200 {
			return true, nil
		}
		r.consume(br)
		if r.status == 101 {
			return true, errBadResponse
		}
	}
}

// consume drops the head from br once it has been used.
func (r *h1Response) consume(br *bufio.Reader) {
	if r.unread > 0 {
		br.Discard(r.unread)
		r.unread = 0
	}
}

// parse reads r.head: a status line and field lines, each ended by CRLF
// or LF (apps are lenient there; the router writes CRLF to clients).
func (r *h1Response) parse(isHead bool) error {
	r.fields, r.kinds = r.fields[:0], r.kinds[:0]
	r.contentLength, r.chunked, r.close, r.bodyless = -1, false, false, false
	b := r.head
	line, b := cutLine(b)
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || len(line) > 12 && line[12] != ' ' {
		return errBadResponse
	}
	http10 := line[7] == '0'
	r.status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if r.status < 100 {
		return errBadResponse
	}
	keepAlive := false
	for len(b) > 0 {
		line, b = cutLine(b)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadResponse
		}
		name, value := line[:colon], line[colon+1:]
		for _, c := range name {
			if h1Class[c]&cToken == 0 {
				return errBadResponse // obs-fold and whitespace before the colon among them
			}
		}
		for _, c := range value {
			if h1Class[c]&cValue == 0 {
				return errBadResponse // a CR or LF here would split the client's response
			}
		}
		value = trimOWS(value)
		k := classifyResponse(name)
		switch k {
		case rkContentLength:
			n, ok := parseLength(value)
			if !ok || r.contentLength >= 0 && uint64(r.contentLength) != n {
				return errBadResponse
			}
			r.contentLength = int64(n) //nolint:gosec // parseLength takes at most 18 digits
		case rkTransferEncoding:
			if !asciiEqualFold(value, "chunked") || r.chunked {
				return errBadResponse // net/http's client takes chunked alone too
			}
			r.chunked = true
		case rkConnection:
			r.close = r.close || tokenListHas(value, "close")
			keepAlive = keepAlive || tokenListHas(value, "keep-alive")
		}
		r.fields = append(r.fields, h1Field{name: name, value: value})
		r.kinds = append(r.kinds, k)
	}
	if http10 && !keepAlive {
		r.close = true
	}
	if r.chunked && r.contentLength >= 0 {
		// RFC 9112 §6.3: chunked wins, and the connection is not to be
		// trusted afterwards.
		r.contentLength = -1
		r.close = true
	}
	// Fields the app's Connection names are hop-by-hop too.
	for i, k := range r.kinds {
		if k != rkConnection {
			continue
		}
		for tok := range tokens(r.fields[i].value) {
			for j := range r.fields {
				if asciiEqualFoldBytes(r.fields[j].name, tok) && r.kinds[j] == rkOther {
					r.kinds[j] = rkHop
				}
			}
		}
	}
	r.bodyless = isHead || r.status < 200 || r.status == 204 || r.status == 304
	if !r.bodyless && !r.chunked && r.contentLength < 0 {
		r.close = true // the body runs to the end of the connection
	}
	return nil
}

// get returns the value of the first field of kind k, or nil.
func (r *h1Response) get(k respKind) []byte {
	for i, kk := range r.kinds {
		if kk == k {
			return r.fields[i].value
		}
	}
	return nil
}

func (r *h1Response) has(k respKind) bool {
	for _, kk := range r.kinds {
		if kk == k {
			return true
		}
	}
	return false
}

func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

func classifyResponse(name []byte) respKind {
	switch len(name) {
	case 2:
		if asciiEqualFold(name, "te") {
			return rkHop
		}
	case 4:
		switch {
		case asciiEqualFold(name, "date"):
			return rkDate
		case asciiEqualFold(name, "etag"):
			return rkETag
		}
	case 7:
		switch {
		case asciiEqualFold(name, "trailer"):
			return rkTrailer
		case asciiEqualFold(name, "upgrade"):
			return rkHop
		}
	case 10:
		switch {
		case asciiEqualFold(name, "connection"):
			return rkConnection
		case asciiEqualFold(name, "keep-alive"):
			return rkHop
		}
	case 12:
		if asciiEqualFold(name, "content-type") {
			return rkContentType
		}
	case 13:
		switch {
		case asciiEqualFold(name, "content-range"):
			return rkContentRange
		case asciiEqualFold(name, "cache-control"):
			return rkCacheControl
		}
	case 14:
		if asciiEqualFold(name, "content-length") {
			return rkContentLength
		}
	case 16:
		switch {
		case asciiEqualFold(name, "content-encoding"):
			return rkContentEncoding
		case asciiEqualFold(name, "proxy-connection"):
			return rkHop
		}
	case 17:
		if asciiEqualFold(name, "transfer-encoding") {
			return rkTransferEncoding
		}
	case 18:
		if asciiEqualFold(name, "proxy-authenticate") {
			return rkHop
		}
	case 19:
		if asciiEqualFold(name, "proxy-authorization") {
			return rkHop
		}
	case 25:
		if asciiEqualFold(name, "strict-transport-security") {
			return rkHSTS
		}
	}
	return rkOther
}

// chunkReader reads a chunked body (RFC 9112 §7.1) and its trailer fields.
type chunkReader struct {
	br      *bufio.Reader
	left    int64 // bytes of the current chunk still to read
	crlf    bool  // the CRLF after a chunk's data is still to read
	done    bool
	trailer []byte // the trailer section's field lines, as sent (CRLF each)
}

var errBadChunk = errors.New("malformed chunked body from the app")

// next returns the next piece of chunk data (pointing into br's buffer,
// valid until the next call), or io.EOF after the last chunk and trailer.
func (c *chunkReader) next() ([]byte, error) {
	for c.left == 0 {
		if c.crlf {
			// Read only now: the data returned last time pointed into
			// the buffer a read could move.
			if line, err := c.line(); err != nil || len(line) != 0 {
				return nil, errBadChunk
			}
			c.crlf = false
		}
		if c.done {
			return nil, io.EOF
		}
		line, err := c.line()
		if err != nil {
			return nil, err
		}
		if semi := bytes.IndexByte(line, ';'); semi >= 0 {
			line = line[:semi] // chunk extensions are dropped
		}
		line = trimOWS(line)
		if len(line) == 0 || len(line) > 15 {
			return nil, errBadChunk
		}
		n, err := strconv.ParseUint(string(line), 16, 64)
		if err != nil {
			return nil, errBadChunk
		}
		if n == 0 {
			c.trailer = c.trailer[:0]
			for {
				line, err := c.line()
				if err != nil {
					return nil, err
				}
				if len(line) == 0 {
					break
				}
				if colon := bytes.IndexByte(line, ':'); colon <= 0 || len(c.trailer)+len(line) > 16<<10 {
					return nil, errBadChunk
				}
				for _, ch := range line {
					if h1Class[ch]&cValue == 0 {
						return nil, errBadChunk
					}
				}
				c.trailer = append(append(c.trailer, line...), '\r', '\n')
			}
			c.done = true
			return nil, io.EOF
		}
		c.left = int64(n) //nolint:gosec // at most 15 hex digits
	}
	avail := c.br.Buffered()
	if avail == 0 {
		avail = 1
	}
	p, err := c.br.Peek(int(min(int64(avail), c.left)))
	if len(p) == 0 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	c.br.Discard(len(p))
	c.left -= int64(len(p))
	c.crlf = c.left == 0
	return p, nil
}

// ready reports whether next can return without waiting for the app: the
// rest of the current chunk, or a whole chunk-size line and data after it,
// is buffered. (The last chunk counts as not ready: the body ends there.)
func (c *chunkReader) ready() bool {
	n := c.br.Buffered()
	if c.left > 0 || n == 0 {
		return n > 0
	}
	b, _ := c.br.Peek(n)
	if c.crlf {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		b = b[i+1:]
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 || i+1 == len(b) {
		return false
	}
	size := trimOWS(bytes.TrimSuffix(b[:i], []byte("\r")))
	if semi := bytes.IndexByte(size, ';'); semi >= 0 {
		size = size[:semi]
	}
	return len(size) > 0 && !bytes.Equal(bytes.TrimLeft(size, "0"), nil)
}

// line reads one CRLF (or LF) terminated line of at most 4 KiB.
func (c *chunkReader) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull || err == io.EOF {
			return nil, errBadChunk
		}
		return nil, err
	}
	if len(line) > 4<<10 {
		return nil, errBadChunk
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}
