package skifftest

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// logCap is each app's log, as runtime's default.
const logCap = 16 << 20

// platform writes skiff's own lines, one per line of text, as runtime's
// AppLog does.
func (h *Host) platform(appID, process, text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		h.logs.Write(appID, skiff.LogLine{Time: time.Now(), Source: "skiff", Process: process,
			Text: applog.CleanText([]byte(strings.TrimRight(line, "\r")))})
	}
}

// lineWriter turns a process's output into log lines of the app (the
// cleaning of runtime's Pump, without its rate limit: the fake's programs
// are the tests' own).
type lineWriter struct {
	logs    *applog.Store
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
		line := bytes.TrimRight(w.partial[:i], "\r")
		w.partial = w.partial[i+1:]
		w.logs.Write(w.appID, skiff.LogLine{Time: time.Now(), Source: "app", Process: w.process, Text: applog.CleanText(line)})
	}
	return len(b), nil
}
