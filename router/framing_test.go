package router

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// RFC 9112 §6.1: a request with both Content-Length and Transfer-Encoding is
// answered 400 and the connection closed, wherever it sits on a connection;
// requests before it are served, nothing after it is.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	tr := newTestRouter(t, nil)
	var mu sync.Mutex
	var seen []string
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("User-Agent") != "skiff-health-check" {
			mu.Lock()
			seen = append(seen, r.URL.Path+" "+string(body))
			mu.Unlock()
		}
	}))
	const h = "Host: app.skiff.test\r\n"
	smuggled := "GET /smuggled HTTP/1.1\r\n" + h + "\r\n"
	long := "/" + strings.Repeat("x", 300)
	const fakeHeader = "X: 1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tc := range []struct {
		name, req string
		status    []string // the responses, in order; then the connection ends
		app       []string
	}{
		{"after two good ones",
			"POST /one HTTP/1.1\r\n" + h + "Content-Length: 4\r\n\r\nabcd" +
				"GET /two HTTP/1.1\r\n" + h + "\r\n" +
				"POST /three HTTP/1.1\r\n" + h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			[]string{"200", "200", "400"}, []string{"/one abcd", "/two "}},
		{"a long target", "POST " + long + " HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n" + smuggled,
			[]string{"400"}, nil},
		{"lower case", "POST /a HTTP/1.1\r\n" + h + "content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			[]string{"400"}, nil},
		{"long header values around", "POST /a HTTP/1.1\r\n" + h + "Cookie: " + strings.Repeat("c", 5000) + "\r\nContent-Length: 6\r\nX-Pad: " + strings.Repeat("p", 100) + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			[]string{"400"}, nil},
		// Without Content-Length a chunked body is served, and the
		// connection still ends after it (RFC 9112 §6.1 asks that of any
		// request the server cannot be sure was framed alike upstream).
		{"chunked alone", "POST /c HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled,
			[]string{"200"}, []string{"/c abc"}},
		// A Content-Length body that looks like headers is only a body.
		{"headers in a body", "POST /b HTTP/1.1\r\n" + h + "Content-Length: " + strconv.Itoa(len(fakeHeader)) + "\r\n\r\n" + fakeHeader +
			"GET /after HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n",
			[]string{"200", "200"}, []string{"/b " + fakeHeader, "/after "}},
	} {
		for _, pieces := range []int{0, 7} {
			mu.Lock()
			seen = nil
			mu.Unlock()
			resp := rawPieces(t, tr.addr, tc.req, pieces)
			var got []string
			for s := resp; ; {
				i := strings.Index(s, "HTTP/1.1 ")
				if i < 0 {
					break
				}
				got = append(got, s[i+9:i+12])
				s = s[i+12:]
			}
			if strings.Join(got, ",") != strings.Join(tc.status, ",") {
				t.Errorf("%s (pieces of %d): responses %v, want %v\n%s", tc.name, pieces, got, tc.status, resp)
			}
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			if strings.Join(seen, "|") != strings.Join(tc.app, "|") {
				t.Errorf("%s (pieces of %d): app saw %q, want %q\n%s", tc.name, pieces, seen, tc.app, resp)
			}
			mu.Unlock()
		}
	}
}

// rawPieces sends req in pieces of n bytes (all at once for 0), so a header
// line spans reads, and returns all the server sent until it closed.
func rawPieces(t *testing.T, addr, req string, n int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	for rest := req; rest != ""; {
		k := len(rest)
		if n > 0 && n < k {
			k = n
		}
		if _, err := io.WriteString(c, rest[:k]); err != nil {
			break // the server may close first
		}
		rest = rest[k:]
		if n > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	out, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the connection stayed open after %q", out)
	}
	return string(out)
}

// Over TLS net/http decrypts and parses in one step, so the pair cannot be
// seen: the request is framed by its Transfer-Encoding alone (RFC 9112
// §6.1's other choice) and the connection ends after the answer, so nothing
// hidden in the body is ever served.
func TestContentLengthWithTransferEncodingTLS(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	var mu sync.Mutex
	var seen []string
	tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "skiff-health-check" {
			mu.Lock()
			seen = append(seen, r.URL.Path)
			mu.Unlock()
		}
	}))
	c, k := ca.issue(t, "app.skiff.test")
	if err := tr.SetCertificate("id-app", cat(c, k)); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", tr.tls, &tls.Config{ServerName: "app.skiff.test", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(conn, "POST /a HTTP/1.1\r\nHost: app.skiff.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.skiff.test\r\n\r\n")
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the connection did not end: %v after %q", err, out)
	}
	if n := strings.Count(string(out), "HTTP/1.1 "); n != 1 {
		t.Errorf("%d responses, want 1: %q", n, out)
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range seen {
		if p == "/smuggled" {
			t.Error("the request hidden in the body was served")
		}
	}
}

// FuzzFramingGuard: on any byte stream the guard flags only a request whose
// own header block (as net/http frames the stream) has both Content-Length
// and Transfer-Encoding, and delivers the stream unchanged up to it.
func FuzzFramingGuard(f *testing.F) {
	const h = "Host: a\r\n"
	for _, s := range []string{
		"GET / HTTP/1.1\r\n" + h + "\r\n",
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhelloGET /x HTTP/1.1\r\n" + h + "\r\n",
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\n" + h + "Content-Length: 30\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.0\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n" + h + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\n" + h + "Content-Length: 3\n\nabcGET / HTTP/1.1\n" + h + "Transfer-Encoding: chunked\nContent-Length: 1\n\n",
		"GET / HTTP/1.1\r\n" + h + "Content-Length: 003\r\nContent-Length: 3\r\n\r\nabc",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, stream []byte, piece uint8) {
		// The guard, fed in pieces.
		g := &framingGuard{Conn: &piecesConn{data: stream, n: int(piece)}}
		delivered, _ := io.ReadAll(g)
		flagged := g.conflict.Load()
		if !bytes.HasPrefix(stream, delivered) {
			t.Fatalf("the guard changed the bytes")
		}
		if flagged == 0 {
			if len(delivered) != len(stream) {
				t.Fatalf("held back %d bytes without a conflict", len(stream)-len(delivered))
			}
		}
		// net/http's framing of the same stream, with each header block
		// read again by textproto to see what it held.
		src := bytes.NewReader(stream)
		br := bufio.NewReader(src)
		for k := int64(1); ; k++ {
			start := len(stream) - src.Len() - br.Buffered()
			req, err := http.ReadRequest(br)
			if err != nil {
				// net/http refuses the request and closes: whatever
				// the guard flagged from here on is never served.
				return
			}
			block := readBlock(stream[start:])
			both := hasField(block, "content-length") && hasField(block, "transfer-encoding")
			if flagged == k && !both {
				t.Fatalf("flagged request %d, which has not both: %q", k, block)
			}
			if flagged == k {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if end := len(stream) - src.Len() - br.Buffered(); flagged > k && end > len(delivered) {
				t.Fatalf("request %d (to byte %d) was not all delivered (%d) before the flagged %d", k, end, len(delivered), flagged)
			}
			if len(req.TransferEncoding) > 0 || req.Close {
				// The handler closes after a chunked request; net/http
				// after a Connection: close.
				if flagged > k {
					t.Fatalf("flagged request %d after the connection ended at %d", flagged, k)
				}
				return
			}
		}
	})
}

// readBlock is the header block at the start of s: up to the first empty line.
func readBlock(s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\n')
		if j < 0 {
			return s
		}
		line := bytes.TrimSuffix(s[i:i+j], []byte("\r"))
		if len(line) == 0 && i > 0 {
			return s[:i]
		}
		i += j + 1
	}
	return s
}

// hasField: a line of the block after the request line names the field.
func hasField(block []byte, name string) bool {
	_, fields, _ := bytes.Cut(block, []byte("\n"))
	for line := range bytes.SplitSeq(fields, []byte("\n")) {
		n, _, ok := bytes.Cut(line, []byte(":"))
		if ok && asciiEqualFold(n, name) {
			return true
		}
	}
	return false
}

// piecesConn is a net.Conn reading data n bytes at a time.
type piecesConn struct {
	net.Conn
	data []byte
	n    int
}

func (c *piecesConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := len(p)
	if c.n > 0 && c.n < k {
		k = c.n
	}
	k = copy(p, c.data[:min(k, len(c.data))])
	c.data = c.data[k:]
	return k, nil
}
