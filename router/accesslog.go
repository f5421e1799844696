package router

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON line per request to <dir>/<app-id>.log. Requests
// append their line to a queue and never wait for the disk: one goroutine
// owns the files, takes the queue a batch at a time (woken when it was
// empty, so that under load one wake-up serves many requests, rather than a
// channel send and a goroutine switch for each), buffers writes and flushes
// them every second, rotates past maxBytes, and fans lines out to tails.
// When the queue holds maxQueued lines, more are dropped and counted rather
// than slowing requests down.
type accessLog struct {
	dir      string
	maxBytes int64
	keep     int
	log      *slog.Logger
	dropped  atomic.Uint64
	quit     chan struct{} // closed by stop
	done     chan struct{}
	stopOnce sync.Once

	qmu       sync.Mutex
	queue     []logLine
	spare     []logLine // the writer's other queue
	maxQueued int
	stopped   bool
	wake      chan struct{} // capacity 1: the queue was empty and is not

	mu    sync.Mutex
	tails map[string]map[chan []byte]struct{}
	files map[string]*logFile // owned by the writer goroutine
}

type logLine struct {
	appID string
	line  *[]byte
}

type logFile struct {
	f       *os.File
	w       *bufio.Writer
	size    int64
	written time.Time
}

// batchPause is how long the writer lets lines gather after a batch.
const batchPause = 2 * time.Millisecond

// idleClose closes a log file after this long without a line, so removed
// and quiet apps hold no descriptor.
const idleClose = 5 * time.Minute

func newAccessLog(dir string, maxBytes int64, keep int, log *slog.Logger) *accessLog {
	l := &accessLog{dir: dir, maxBytes: maxBytes, keep: keep, log: log, maxQueued: 8192,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		tails: map[string]map[chan []byte]struct{}{}, files: map[string]*logFile{}}
	go l.run()
	return l
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) write(appID string, line *[]byte) {
	l.qmu.Lock()
	if l.stopped || len(l.queue) >= l.maxQueued {
		l.qmu.Unlock()
		l.dropped.Add(1)
		lineBufs.Put(line)
		return
	}
	first := len(l.queue) == 0
	l.queue = append(l.queue, logLine{appID, line})
	l.qmu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// take swaps the queue for the writer's spare one.
func (l *accessLog) take() []logLine {
	l.qmu.Lock()
	batch := l.queue
	l.queue = l.spare[:0]
	l.qmu.Unlock()
	return batch
}

func (l *accessLog) run() {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-l.wake:
			batch := l.take()
			for _, ll := range batch {
				l.append(ll)
			}
			clear(batch)
			l.spare = batch[:0]
			// Let the next lines gather: under load, one wake-up then
			// serves a batch (a line waits 2 ms more at most).
			time.Sleep(batchPause)
		case <-l.quit:
			l.qmu.Lock()
			l.stopped = true
			l.qmu.Unlock()
			for _, ll := range l.take() {
				l.append(ll)
			}
			l.flushAll(true)
			return
		case <-tick.C:
			l.flushAll(false)
			if n := l.dropped.Swap(0); n > 0 {
				l.log.Warn("access log lines dropped", "count", n)
			}
		}
	}
}

func (l *accessLog) append(ll logLine) {
	line := *ll.line
	l.mu.Lock()
	for ch := range l.tails[ll.appID] {
		select {
		case ch <- append([]byte(nil), line...):
		default: // a slow reader loses lines, never the log
		}
	}
	l.mu.Unlock()
	f, err := l.file(ll.appID)
	if err == nil {
		n, _ := f.w.Write(line)
		f.size += int64(n)
		f.written = time.Now()
		if f.size >= l.maxBytes {
			l.rotate(ll.appID, f)
		}
	} else {
		l.log.Error("access log", "app_id", ll.appID, "err", err)
	}
	*ll.line = line[:0]
	lineBufs.Put(ll.line)
}

func (l *accessLog) path(appID string) string { return filepath.Join(l.dir, appID+".log") }

func (l *accessLog) file(appID string) (*logFile, error) {
	if f := l.files[appID]; f != nil {
		return f, nil
	}
	f, err := os.OpenFile(l.path(appID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	lf := &logFile{f: f, w: bufio.NewWriterSize(f, 64<<10), size: fi.Size(), written: time.Now()}
	l.files[appID] = lf
	return lf, nil
}

// rotate renames app.log to app.log.1 (and .1 to .2 …, keeping l.keep).
func (l *accessLog) rotate(appID string, f *logFile) {
	if err := f.w.Flush(); err != nil {
		l.log.Error("access log", "app_id", appID, "err", err)
	}
	f.f.Close()
	delete(l.files, appID)
	p := l.path(appID)
	os.Remove(fmt.Sprintf("%s.%d", p, l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1)) // a missing older file is the usual case
	}
	if err := os.Rename(p, p+".1"); err != nil {
		l.log.Error("access log rotation", "app_id", appID, "err", err)
	}
}

func (l *accessLog) flushAll(closeFiles bool) {
	now := time.Now()
	for id, f := range l.files {
		if err := f.w.Flush(); err != nil {
			l.log.Error("access log", "app_id", id, "err", err)
		}
		if closeFiles || now.Sub(f.written) > idleClose {
			f.f.Close()
			delete(l.files, id)
		}
	}
}

// tail delivers the app's new lines until ctx ends; a reader that falls
// behind by more than 1024 lines misses lines.
func (l *accessLog) tail(ctx context.Context, appID string) <-chan []byte {
	ch := make(chan []byte, 1024)
	l.mu.Lock()
	if l.tails[appID] == nil {
		l.tails[appID] = map[chan []byte]struct{}{}
	}
	l.tails[appID][ch] = struct{}{}
	l.mu.Unlock()
	context.AfterFunc(ctx, func() {
		l.mu.Lock()
		delete(l.tails[appID], ch)
		if len(l.tails[appID]) == 0 {
			delete(l.tails, appID)
		}
		l.mu.Unlock()
		close(ch)
	})
	return ch
}

// stop writes what is buffered and closes the files.
func (l *accessLog) stop() {
	l.stopOnce.Do(func() { close(l.quit) })
	<-l.done
}

// logRequest writes the access log line of a request on the net/http path.
func (r *Router) logRequest(req *http.Request, st *reqState) {
	st.rw.finish()
	status := st.rw.status
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing
	}
	e := logEntry{start: st.start, app: st.app, host: st.host, method: req.Method, uri: req.URL.RequestURI(),
		status: status, bytes: st.rw.bytes, id: st.reqID, client: st.clientIP, proto: req.Proto, tls: req.TLS != nil}
	if st.backend != nil {
		e.instance = st.backend.addr
	}
	r.writeLog(&e)
}

// logEntry is what an access log line says about one request.
type logEntry struct {
	plain       bool // every string is known to need no JSON escape
	start       time.Time
	app         *app
	host        string
	method, uri string
	status      int
	bytes       int64
	instance    string
	id          string
	client      string
	proto       string
	tls         bool
}

// writeLog builds the access log line without fmt or reflection and hands
// it to the writer.
func (r *Router) writeLog(e *logEntry) {
	str := appendJSON
	if e.plain {
		str = appendQuoted
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = appendLogTime(b, e.start)
	b = append(b, `","app":`...)
	b = str(b, e.app.route.Name)
	b = append(b, `,"host":`...)
	b = str(b, e.host)
	b = append(b, `,"method":`...)
	b = str(b, e.method)
	b = append(b, `,"path":`...)
	b = str(b, e.uri)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, time.Since(e.start).Microseconds())
	b = append(b, `,"instance":`...)
	b = str(b, e.instance)
	b = append(b, `,"request_id":"`...)
	b = append(b, e.id...)
	b = append(b, `","client":`...)
	b = str(b, e.client)
	b = append(b, `,"proto":`...)
	b = str(b, e.proto)
	b = append(b, `,"tls":`...)
	b = strconv.AppendBool(b, e.tls)
	b = append(b, "}\n"...)
	*bp = b
	r.access.write(e.app.route.AppID, bp)
}

// appendQuoted appends s in quotes, for strings that need no escape.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendLogTime appends t as UTC, to the millisecond
// ("2006-01-02T15:04:05.000Z"); the part to the second is made once a second.
func appendLogTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	p := logSecond.Load()
	if p == nil || p.sec != sec {
		p = &cachedDate{sec: sec, b: t.AppendFormat(nil, "2006-01-02T15:04:05.")}
		logSecond.Store(p)
	}
	b = append(b, p.b...)
	ms := t.Nanosecond() / 1e6
	return append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z') //nolint:gosec // digits of a millisecond count below 1000
}

var logSecond atomic.Pointer[cachedDate]

// appendMillis appends a duration in µs as milliseconds with three decimals.
func appendMillis(b []byte, us int64) []byte {
	if us < 0 {
		us = 0
	}
	b = strconv.AppendInt(b, us/1000, 10)
	f := us % 1000
	return append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

func clientIP(req *http.Request) string { return addrHost(req.RemoteAddr) }

// addrHost is the address of "host:port" or "[v6]:port", without the port.
func addrHost(a string) string {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			a = a[:i]
			break
		}
	}
	if len(a) > 1 && a[0] == '[' {
		a = a[1 : len(a)-1]
	}
	return a
}

// appendJSON appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
// Runs of characters that need no escape are copied at once.
func appendJSON(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && jsonPlain[s[j]] {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			default: // c < 0x20 || c == 0x7f
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// jsonPlain marks the ASCII characters a JSON string holds as they are.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()
