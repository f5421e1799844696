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
// hand their line to a channel and never wait: one goroutine owns the files,
// buffers writes and flushes them every second, rotates past maxBytes, and
// fans lines out to tails. When the channel is full, lines are dropped and
// counted rather than slowing requests down.
type accessLog struct {
	dir      string
	maxBytes int64
	keep     int
	log      *slog.Logger
	ch       chan logLine
	dropped  atomic.Uint64
	quit     chan struct{} // closed by stop; ch is never closed, so a late write cannot panic
	done     chan struct{}
	stopOnce sync.Once

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

// idleClose closes a log file after this long without a line, so removed
// and quiet apps hold no descriptor.
const idleClose = 5 * time.Minute

func newAccessLog(dir string, maxBytes int64, keep int, log *slog.Logger) *accessLog {
	l := &accessLog{dir: dir, maxBytes: maxBytes, keep: keep, log: log,
		ch: make(chan logLine, 8192), quit: make(chan struct{}), done: make(chan struct{}),
		tails: map[string]map[chan []byte]struct{}{}, files: map[string]*logFile{}}
	go l.run()
	return l
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) write(appID string, line *[]byte) {
	select {
	case l.ch <- logLine{appID, line}:
	default:
		l.dropped.Add(1)
		lineBufs.Put(line)
	}
}

func (l *accessLog) run() {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ll := <-l.ch:
			l.append(ll)
		case <-l.quit:
			for n := len(l.ch); n > 0; n-- {
				l.append(<-l.ch)
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
	f.w.Flush()
	f.f.Close()
	delete(l.files, appID)
	p := l.path(appID)
	os.Remove(fmt.Sprintf("%s.%d", p, l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1))
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

// logRequest builds the access log line without fmt or reflection.
func (r *Router) logRequest(req *http.Request, st *reqState) {
	st.rw.finish()
	status := st.rw.status
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = st.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","app":`...)
	b = appendJSON(b, st.app.route.Name)
	b = append(b, `,"host":`...)
	b = appendJSON(b, st.host)
	b = append(b, `,"method":`...)
	b = appendJSON(b, req.Method)
	b = append(b, `,"path":`...)
	b = appendJSON(b, req.URL.RequestURI())
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, st.rw.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(time.Since(st.start).Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"instance":`...)
	if st.backend != nil {
		b = appendJSON(b, st.backend.addr)
	} else {
		b = append(b, `""`...)
	}
	b = append(b, `,"request_id":"`...)
	b = append(b, st.reqID...)
	b = append(b, `","client":`...)
	b = appendJSON(b, st.clientIP)
	b = append(b, `,"proto":`...)
	b = appendJSON(b, req.Proto)
	b = append(b, `,"tls":`...)
	b = strconv.AppendBool(b, req.TLS != nil)
	b = append(b, "}\n"...)
	*bp = b
	r.access.write(st.app.route.AppID, bp)
}

func clientIP(req *http.Request) string {
	a := req.RemoteAddr
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
func appendJSON(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
			default:
				b = append(b, c)
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
