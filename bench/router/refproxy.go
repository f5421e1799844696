package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// refproxy is a reference proxy of the benchmark's own, not skiff: the
// least a keep-alive HTTP/1.1 reverse proxy does per small request —
// the request line and fields copied with Host and the seven fields skiff
// and the benchmark's nginx send added, the response relayed as it came,
// a buffered access-log line, upstream connections kept and reused — in
// one of two concurrency models with the same work:
//
//   - goroutines: one per connection on Go's poller (the model of
//     net/http's server, of fasthttp's and of skiff's router);
//   - loop: one thread per processor of its own, locked, each sleeping in
//     its own epoll_wait(2) and serving every connection it accepted from
//     the readiness events (nginx's model), refloop.go.
//
// Side by side in one run they measure what the model costs on this
// machine apart from the work. They serve GET without a body
// over plain HTTP, to an upstream that answers with a Content-Length, and
// nothing else: the small plain cells, no more.
func refproxy(args []string) error {
	fs := newFlags("refproxy")
	model := fs.String("model", "loop", "loop or goroutines")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	up := fs.String("upstream", "", "the app's host:port")
	logPath := fs.String("log", "", "access log file")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	upAddr, err := net.ResolveTCPAddr("tcp4", *up)
	if err != nil {
		return fmt.Errorf("-upstream %q: %w (give the app's host:port)", *up, err)
	}
	if *logPath == "" {
		return fmt.Errorf("-log: the access log's file is needed (the run gives one in its work directory)")
	}
	logFile, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("-log: %w", err)
	}
	defer logFile.Close()
	switch *model {
	case "loop":
		return serveLoops(*listen, upAddr, logFile)
	case "goroutines":
		return serveGoroutines(*listen, upAddr, logFile)
	}
	return fmt.Errorf("-model %q: loop or goroutines", *model)
}

var (
	refRequestID atomic.Uint64
	errRefHead   = errors.New("refproxy: a request it does not serve")
)

// refRequest appends to dst the request to the app for the client's head
// (which ends in CRLF CRLF), and reports whether the client asked to
// close. A body, an upgrade or a malformed head is errRefHead.
func refRequest(dst, head []byte, peer string) ([]byte, bool, error) {
	lineEnd := bytes.Index(head, crlf)
	line := head[:lineEnd]
	if !bytes.HasPrefix(line, []byte("GET ")) { // a HEAD's response would have a length and no body
		return dst, false, errRefHead
	}
	dst = append(append(dst, line...), crlf...)
	var host []byte
	closing := false
	for rest := head[lineEnd+2 : len(head)-2]; len(rest) > 0; {
		i := bytes.Index(rest, crlf)
		if i < 0 {
			return dst, false, errRefHead
		}
		f := rest[:i]
		rest = rest[i+2:]
		name, value, ok := bytes.Cut(f, []byte(":"))
		if !ok {
			return dst, false, errRefHead
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Host")):
			host = value
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Content-Length")), bytes.EqualFold(name, []byte("Transfer-Encoding")), bytes.EqualFold(name, []byte("Upgrade")):
			return dst, false, errRefHead
		default:
			dst = append(append(dst, f...), crlf...)
		}
	}
	dst = append(append(append(dst, "Host: "...), host...), crlf...)
	dst = append(append(append(dst, "X-Forwarded-For: "...), peer...), crlf...)
	dst = append(dst, "X-Forwarded-Proto: http\r\n"...)
	dst = append(append(append(dst, "X-Real-Ip: "...), peer...), crlf...)
	dst = append(append(append(dst, "X-Forwarded-Host: "...), host...), crlf...)
	dst = append(dst, "X-Forwarded-Port: 80\r\n"...)
	dst = strconv.AppendUint(append(dst, "X-Request-Id: "...), refRequestID.Add(1), 16)
	dst = strconv.AppendInt(append(dst, "\r\nX-Request-Start: t="...), time.Now().UnixMilli(), 10)
	return append(dst, "\r\n\r\n"...), closing, nil
}

var crlf = []byte("\r\n")

// refResponse is what the proxy follows of the app's response.
type refResponse struct {
	head   []byte // the head so far, while it is not complete and came in parts
	out    []byte // the head with Connection: close added
	left   int    // body bytes still to relay; -1: the head is not complete
	status [3]byte
	total  int // bytes from the app
}

func (r *refResponse) reset() { r.head, r.left, r.total = r.head[:0], -1, 0 }

// relay takes p, the next bytes of the response, and returns what to
// write to the client (nothing until the head is complete; the head with
// Connection: close if the client asked to close) and whether the response
// is complete.
func (r *refResponse) relay(p []byte, closing bool) ([]byte, bool, error) {
	r.total += len(p)
	if r.left >= 0 {
		r.left -= len(p)
		return p, r.left <= 0, nil
	}
	whole := p
	if len(r.head) > 0 || !bytes.Contains(p, []byte("\r\n\r\n")) {
		r.head = append(r.head, p...)
		whole = r.head
	}
	end := bytes.Index(whole, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false, nil
	}
	lineEnd := bytes.Index(whole, crlf)
	if lineEnd < 12 {
		return nil, false, errRefHead
	}
	copy(r.status[:], whole[9:12])
	i := bytes.Index(bytes.ToLower(whole[:end+2]), []byte("\r\ncontent-length:"))
	if i < 0 {
		return nil, false, errRefHead
	}
	v := whole[i+len("\r\ncontent-length:"):]
	n, err := strconv.Atoi(string(bytes.TrimSpace(v[:bytes.IndexByte(v, '\r')])))
	if err != nil {
		return nil, false, errRefHead
	}
	r.left = n - (len(whole) - end - 4)
	if closing {
		r.out = append(append(r.out[:0], whole[:lineEnd+2]...), "Connection: close\r\n"...)
		whole = append(r.out, whole[lineEnd+2:]...)
		r.out = whole
	}
	return whole, r.left <= 0, nil
}

// refLogLine appends an access-log line, nginx's combined format's first
// fields.
func refLogLine(dst []byte, peer string, r *refResponse) []byte {
	dst = append(append(dst, peer...), " - - ["...)
	dst = time.Now().AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
	dst = append(append(append(dst, "] \"GET\" "...), r.status[:]...), ' ')
	return append(strconv.AppendInt(dst, int64(r.total), 10), '\n')
}

// serveGoroutines is the goroutine-per-connection model.
func serveGoroutines(listen string, up *net.TCPAddr, logFile *os.File) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	g := &refGoroutines{up: up, log: bufio.NewWriterSize(logFile, 64<<10)}
	go stopOnSignal(func() { l.Close() })
	for {
		c, err := l.Accept()
		if err != nil {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.log.Flush()
		}
		go g.serve(c)
	}
}

type refGoroutines struct {
	up   *net.TCPAddr
	mu   sync.Mutex // guards log and idle
	log  *bufio.Writer
	idle []net.Conn // upstream connections between requests
}

func (g *refGoroutines) upstream() (net.Conn, error) {
	g.mu.Lock()
	if n := len(g.idle); n > 0 {
		c := g.idle[n-1]
		g.idle = g.idle[:n-1]
		g.mu.Unlock()
		return c, nil
	}
	g.mu.Unlock()
	return net.DialTCP("tcp", nil, g.up)
}

func (g *refGoroutines) serve(c net.Conn) {
	defer c.Close()
	peer, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	in := make([]byte, 0, 4<<10)
	buf := make([]byte, 32<<10)
	var out, line []byte
	var resp refResponse
	for {
		end := bytes.Index(in, []byte("\r\n\r\n"))
		for end < 0 {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			in = append(in, buf[:n]...)
			end = bytes.Index(in, []byte("\r\n\r\n"))
		}
		var closing bool
		var err error
		if out, closing, err = refRequest(out[:0], in[:end+4], peer); err != nil {
			return
		}
		in = append(in[:0], in[end+4:]...)
		u, err := g.upstream()
		if err != nil {
			return
		}
		if _, err := u.Write(out); err != nil {
			u.Close()
			return
		}
		resp.reset()
		for done := false; !done; {
			n, err := u.Read(buf)
			if err != nil {
				u.Close()
				return
			}
			var p []byte
			if p, done, err = resp.relay(buf[:n], closing); err != nil {
				u.Close()
				return
			}
			if _, err := c.Write(p); err != nil {
				u.Close()
				return
			}
		}
		line = refLogLine(line[:0], peer, &resp)
		g.mu.Lock()
		_, _ = g.log.Write(line)
		g.idle = append(g.idle, u)
		g.mu.Unlock()
		if closing {
			return
		}
	}
}
