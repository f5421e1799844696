package cnb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Log writes build output in the buildpack convention that Heroku users know
// and the push output keeps: "-----> " starts a step, seven spaces indent its
// details and the output of the commands it runs, " !     " marks errors and
// warnings.
type Log struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLog returns a Log writing to w.
func NewLog(w io.Writer) *Log { return &Log{w: w} }

const (
	stepPrefix   = "-----> "
	detailPrefix = "       "
	errorPrefix  = " !     "
)

// Step starts a step.
func (l *Log) Step(format string, args ...any) { l.lines(stepPrefix, fmt.Sprintf(format, args...)) }

// Detail prints a detail line of the current step.
func (l *Log) Detail(format string, args ...any) {
	l.lines(detailPrefix, fmt.Sprintf(format, args...))
}

// Warn prints a warning the user should act on.
func (l *Log) Warn(format string, args ...any) {
	l.lines(errorPrefix, "Warning: "+fmt.Sprintf(format, args...))
}

// Error prints err; a *UserError's detail lines follow its message.
func (l *Log) Error(err error) {
	var ue *UserError
	if errors.As(err, &ue) {
		l.lines(errorPrefix, ue.Message)
		for _, d := range ue.Detail {
			l.lines(errorPrefix, d)
		}
		return
	}
	l.lines(errorPrefix, err.Error())
}

// Done prints how long a step took, as a detail line.
func (l *Log) Done(start time.Time) {
	l.Detail("Done (%s)", time.Since(start).Round(100*time.Millisecond))
}

func (l *Log) lines(prefix, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		_, _ = io.WriteString(l.w, prefix+line+"\n") // the build's output
	}
}

// Indented returns a writer that prints what a command writes as detail
// lines. Close flushes a last unterminated line.
func (l *Log) Indented() io.WriteCloser { return &indentWriter{log: l} }

// indentWriter prefixes each complete line; it buffers at most one partial
// line (capped, so a command printing megabytes without a newline cannot
// exhaust memory).
type indentWriter struct {
	log *Log
	buf []byte
}

const maxPartialLine = 64 << 10

func (w *indentWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxPartialLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *indentWriter) emit(line []byte) {
	// Progress bars redraw with carriage returns: keep the last state only.
	if i := bytes.LastIndexByte(bytes.TrimRight(line, "\r"), '\r'); i >= 0 {
		line = line[i+1:]
	}
	line = bytes.TrimRight(line, "\r")
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	// The build's output: a failed write is the build's end, seen by it.
	_, _ = io.WriteString(w.log.w, detailPrefix)
	_, _ = w.log.w.Write(line)
	_, _ = io.WriteString(w.log.w, "\n")
}

func (w *indentWriter) Close() error {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	return nil
}
