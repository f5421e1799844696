// Package applog keeps apps' logs on disk, the same for every scheduler:
// their processes' output and the platform's own lines, as text in the
// Heroku shape, capped per app, queried and followed.
package applog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// maxLineBytes splits longer output lines, so one line never holds the
// whole log.
const maxLineBytes = 8 << 10

// Store keeps each app's log as text lines in the Heroku shape,
// "2026-01-02T15:04:05.000000Z app[web.1]: text", in two files that
// together stay under the cap.
type Store struct {
	dir string
	cap int64
	mu  sync.Mutex
	app map[string]*appLog
}

type appLog struct {
	mu   sync.Mutex
	dir  string
	f    *os.File
	size int64
	subs map[chan skiff.LogLine]struct{}
}

// New opens the logs kept in dir, each app under capBytes.
func New(dir string, capBytes int64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &Store{dir: dir, cap: capBytes, app: map[string]*appLog{}}, nil
}

var appIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// get returns the app's log. An id that could name another directory
// gets a log nobody else shares, in no directory.
func (s *Store) get(appID string) *appLog {
	if !appIDRE.MatchString(appID) || strings.Contains(appID, "..") {
		return &appLog{dir: filepath.Join(os.DevNull, "invalid"), subs: map[chan skiff.LogLine]struct{}{}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app[appID]
	if a == nil {
		a = &appLog{dir: filepath.Join(s.dir, appID), subs: map[chan skiff.LogLine]struct{}{}}
		s.app[appID] = a
	}
	return a
}

// Write appends a line (already split and cleaned) and hands it to
// followers that keep up; slow followers miss lines rather than block.
func (s *Store) Write(appID string, l skiff.LogLine) {
	a := s.get(appID)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			return
		}
		f, err := os.OpenFile(filepath.Join(a.dir, "app.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		st, _ := f.Stat()
		a.f, a.size = f, st.Size()
	}
	line := formatLine(l)
	if a.size+int64(len(line)) > s.cap/2 {
		a.f.Close()
		_ = os.Rename(filepath.Join(a.dir, "app.log"), filepath.Join(a.dir, "app.log.1")) // failing, the truncation below still caps it
		f, err := os.OpenFile(filepath.Join(a.dir, "app.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			a.f = nil
			return
		}
		a.f, a.size = f, 0
	}
	n, _ := a.f.WriteString(line)
	a.size += int64(n)
	for ch := range a.subs {
		select {
		case ch <- l:
		default:
		}
	}
}

// Remove deletes an app's log.
func (s *Store) Remove(appID string) error {
	a := s.get(appID)
	a.mu.Lock()
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
	a.mu.Unlock()
	s.mu.Lock()
	delete(s.app, appID)
	s.mu.Unlock()
	return os.RemoveAll(a.dir)
}

// Close closes every app's log file.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.app {
		a.mu.Lock()
		if a.f != nil {
			a.f.Close()
			a.f = nil
		}
		a.mu.Unlock()
	}
}

func formatLine(l skiff.LogLine) string {
	return fmt.Sprintf("%s %s[%s]: %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), l.Source, l.Process, l.Text)
}

func parseLine(s string) (skiff.LogLine, bool) {
	ts, rest, ok := strings.Cut(s, " ")
	if !ok {
		return skiff.LogLine{}, false
	}
	t, err := time.Parse("2006-01-02T15:04:05.000000Z", ts)
	if err != nil {
		return skiff.LogLine{}, false
	}
	head, text, ok := strings.Cut(rest, ": ")
	src, proc, ok2 := strings.Cut(head, "[")
	if !ok || !ok2 || !strings.HasSuffix(proc, "]") {
		return skiff.LogLine{}, false
	}
	return skiff.LogLine{Time: t, Source: src, Process: strings.TrimSuffix(proc, "]"), Text: text}, true
}

// CleanText makes output safe to store and print: control characters
// (terminal escapes included) become '?', tabs stay.
func CleanText(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, r := range strings.ToValidUTF8(string(b), "\uFFFD") {
		if (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = '?'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func matches(q skiff.LogQuery, l skiff.LogLine) bool {
	if !q.Since.IsZero() && l.Time.Before(q.Since) {
		return false
	}
	if q.Process != "" && l.Process != q.Process && !strings.HasPrefix(l.Process, q.Process+".") {
		return false
	}
	return true
}

// Query reads matching history (the last q.Lines) and, with Follow,
// streams new lines until ctx ends.
func (s *Store) Query(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	n := q.Lines
	if n <= 0 {
		n = 100
	}
	a := s.get(q.AppID)
	var ch chan skiff.LogLine
	a.mu.Lock() // no line is written between history and subscription
	hist, err := readHistory(a.dir, q, n)
	if q.Follow {
		ch = make(chan skiff.LogLine, 1024)
		a.subs[ch] = struct{}{}
		defer func() {
			a.mu.Lock()
			delete(a.subs, ch)
			a.mu.Unlock()
		}()
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	for _, l := range hist {
		if err := fn(l); err != nil {
			return err
		}
	}
	if !q.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-ch:
			if matches(q, l) {
				if err := fn(l); err != nil {
					return err
				}
			}
		}
	}
}

func readHistory(dir string, q skiff.LogQuery, n int) ([]skiff.LogLine, error) {
	ring := make([]skiff.LogLine, n) // the last n, circular
	count := 0
	for _, name := range []string{"app.log.1", "app.log"} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		br := bufio.NewReaderSize(f, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if l, ok := parseLine(strings.TrimSuffix(line, "\n")); ok && matches(q, l) {
				ring[count%n] = l
				count++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return nil, err
			}
		}
		f.Close()
	}
	if count <= n {
		return ring[:count], nil
	}
	start := count % n
	return append(ring[start:], ring[:start]...), nil
}

// Output rate an instance may log: past the burst, lines are dropped (and
// counted in a platform line) rather than stored, so a flood costs the
// daemon a pipe read, not a formatted write per line, and cannot push
// everything else out of the app's capped log in an instant.
const (
	logRate  = 2 << 20 // bytes per second
	logBurst = 8 << 20
)

// Pump copies a process's output into the app's log, line by line, until
// r fails (the FIFO is closed).
func (s *Store) Pump(r io.Reader, appID, process string) error {
	br := bufio.NewReaderSize(r, maxLineBytes)
	tokens, last := float64(logBurst), time.Now()
	var dropped, droppedBytes int
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			now := time.Now()
			tokens = min(logBurst, tokens+now.Sub(last).Seconds()*logRate)
			last = now
			if tokens < float64(len(b)) {
				dropped++
				droppedBytes += len(b)
			} else {
				tokens -= float64(len(b))
				if dropped > 0 {
					s.Write(appID, skiff.LogLine{Time: now, Source: "skiff", Process: process,
						Text: fmt.Sprintf("Log output over %d MiB/s: %d lines (%d bytes) dropped", logRate>>20, dropped, droppedBytes)})
					dropped, droppedBytes = 0, 0
				}
				b = bytes.TrimRight(b, "\r\n")
				s.Write(appID, skiff.LogLine{Time: now, Source: "app", Process: process, Text: CleanText(b)})
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}
