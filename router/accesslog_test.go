package router

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

type accessEntry struct {
	Time       time.Time `json:"time"`
	App        string    `json:"app"`
	Host       string    `json:"host"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	Bytes      int64     `json:"bytes"`
	DurationMS float64   `json:"duration_ms"`
	Instance   string    `json:"instance"`
	RequestID  string    `json:"request_id"`
	Client     string    `json:"client"`
}

func TestAccessLog(t *testing.T) {
	tr := newTestRouter(t, nil)
	b := startBackend(t, echo("a"))
	tr.addApp(t, skiff.AppRoute{Name: "app"}, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tail := tr.TailAccessLog(ctx, "id-app")
	c := tr.client()
	_, body := get(t, c, "http://app.skiff.test/hello?q=\"x\"")
	get(t, c, "http://app.skiff.test/%ff%00bad")

	var lines []string
	for range 2 {
		select {
		case l := <-tail:
			lines = append(lines, string(l))
		case <-time.After(3 * time.Second):
			t.Fatal("no line on the tail")
		}
	}
	var e accessEntry
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
	}
	if e.App != "app" || e.Host != "app.skiff.test" || e.Method != "GET" || e.Path != `/hello?q=%22x%22` && e.Path != `/hello?q="x"` ||
		e.Status != 200 || e.Bytes != int64(len(body)) || e.Instance != b.addr || len(e.RequestID) != 32 ||
		e.Client != "127.0.0.1" || time.Since(e.Time) > time.Minute || e.DurationMS <= 0 {
		t.Errorf("entry %+v from %s", e, lines[0])
	}
	if !strings.Contains(body, e.RequestID) {
		t.Error("the logged request id is not the one the app got")
	}
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatalf("line with odd path is not JSON: %v\n%s", err, lines[1])
	}
	// The file gets the same lines (flushed within a second).
	waitFor(t, 3*time.Second, "the log file", func() bool {
		data, _ := os.ReadFile(tr.AccessLogPath("id-app"))
		return strings.Count(string(data), "\n") == 2 && string(data) == lines[0]+lines[1]
	})
	cancel()
	for range tail { // closed after ctx ends
	}
}

func TestAccessLogRotation(t *testing.T) {
	dir := t.TempDir()
	l := newAccessLog(dir, 1000, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 95 {
		bp := lineBufs.Get().(*[]byte)
		*bp = append((*bp)[:0], strings.Repeat("x", 99)+"\n"...)
		l.write("app1", bp)
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	l.stop()
	files, _ := filepath.Glob(filepath.Join(dir, "app1.log*"))
	if len(files) != 3 {
		t.Fatalf("files %v, want app1.log, .1 and .2", files)
	}
	for _, f := range files {
		fi, _ := os.Stat(f)
		if fi.Size() > 1000 {
			t.Errorf("%s is %d bytes", f, fi.Size())
		}
		data, _ := os.ReadFile(f)
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			if len(sc.Text()) != 99 {
				t.Fatalf("%s has a broken line %q", f, sc.Text())
			}
		}
	}
}

// The hot path never waits for the log: a full queue drops lines.
func TestAccessLogNeverBlocks(t *testing.T) {
	l := &accessLog{maxQueued: 0} // full at once, and no writer goroutine
	done := make(chan struct{})
	go func() {
		bp := lineBufs.Get().(*[]byte)
		l.write("x", bp)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("write blocked")
	}
	if l.dropped.Load() != 1 {
		t.Error("the dropped line was not counted")
	}
}

func TestAppendJSON(t *testing.T) {
	for _, s := range []string{"plain", `q"uote\back`, "ctl\x00\x1f\x7f\n", "bad\xff\xfeutf8", "é日本"} {
		var got string
		if err := json.Unmarshal(appendJSON(nil, s), &got); err != nil {
			t.Errorf("appendJSON(%q) is not JSON: %v", s, err)
		} else if want := strings.ToValidUTF8(s, "\uFFFD"); got != want && !strings.Contains(s, "\xff") {
			t.Errorf("appendJSON(%q) round-trips to %q", s, got)
		}
	}
}

// A request that outlives Shutdown (a websocket past the grace) still logs
// its line: after stop the line is dropped, and nothing panics. What was
// written before stop is on disk.
func TestAccessLogWriteAfterStop(t *testing.T) {
	dir := t.TempDir()
	l := newAccessLog(dir, 1<<20, 2, testLogger(t))
	line := func(s string) *[]byte {
		bp := lineBufs.Get().(*[]byte)
		*bp = append((*bp)[:0], s+"\n"...)
		return bp
	}
	l.write("app", line("before"))
	l.stop()
	for range 10000 {
		l.write("app", line("after"))
	}
	l.stop() // twice is fine
	b, err := os.ReadFile(l.path("app"))
	if err != nil || string(b) != "before\n" {
		t.Errorf("log after stop: %q %v", b, err)
	}
}
