package skifftest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// maxLogLines caps each app's log, as runtime caps it in bytes.
const maxLogLines = 10000

// logStore keeps every app's log in memory; it belongs to the Host, so
// logs outlive a Scheduler as runtime's files outlive the daemon.
type logStore struct {
	mu   sync.Mutex
	apps map[string]*appLog
}

type appLog struct {
	lines []skiff.LogLine
	subs  map[chan skiff.LogLine]struct{}
}

func (s *logStore) get(appID string) *appLog {
	if s.apps == nil {
		s.apps = map[string]*appLog{}
	}
	a := s.apps[appID]
	if a == nil {
		a = &appLog{subs: map[chan skiff.LogLine]struct{}{}}
		s.apps[appID] = a
	}
	return a
}

func (s *logStore) write(appID string, l skiff.LogLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.get(appID)
	if len(a.lines) >= maxLogLines {
		a.lines = append(a.lines[:0], a.lines[len(a.lines)-maxLogLines/2:]...)
	}
	a.lines = append(a.lines, l)
	for ch := range a.subs {
		select {
		case ch <- l:
		default: // a follower that does not keep up misses lines
		}
	}
}

// platform writes skiff's own lines, one per line of text.
func (s *logStore) platform(appID, process, text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		s.write(appID, skiff.LogLine{Time: time.Now(), Source: "skiff", Process: process, Text: line})
	}
}

func (s *logStore) remove(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[appID]; a != nil {
		a.lines = nil
	}
}

func matches(q skiff.LogQuery, l skiff.LogLine) bool {
	if !q.Since.IsZero() && l.Time.Before(q.Since) {
		return false
	}
	return q.Process == "" || l.Process == q.Process || strings.HasPrefix(l.Process, q.Process+".")
}

func (s *logStore) query(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	n := q.Lines
	if n <= 0 {
		n = 100
	}
	s.mu.Lock()
	a := s.get(q.AppID)
	var hist []skiff.LogLine
	for _, l := range a.lines {
		if matches(q, l) {
			hist = append(hist, l)
		}
	}
	if len(hist) > n {
		hist = hist[len(hist)-n:]
	}
	var ch chan skiff.LogLine
	if q.Follow {
		ch = make(chan skiff.LogLine, 1024)
		a.subs[ch] = struct{}{}
		defer func() {
			s.mu.Lock()
			delete(a.subs, ch)
			s.mu.Unlock()
		}()
	}
	s.mu.Unlock()
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

// lineWriter turns a process's output into log lines of the app.
type lineWriter struct {
	logs    *logStore
	appID   string
	process string
	mu      sync.Mutex
	partial []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.partial[:i]), "\r")
		w.partial = w.partial[i+1:]
		w.logs.write(w.appID, skiff.LogLine{Time: time.Now(), Source: "app", Process: w.process, Text: line})
	}
	return len(b), nil
}
