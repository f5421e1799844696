package applog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func TestLogsFilterRotateFollow(t *testing.T) {
	s, err := New(t.TempDir(), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 2000 {
		proc := "web.1"
		if i%2 == 1 {
			proc = "worker.1"
		}
		s.Write("app", skiff.LogLine{Time: t0.Add(time.Duration(i) * time.Second), Source: "app", Process: proc, Text: fmt.Sprintf("line %d", i)})
	}
	s.Write("other", skiff.LogLine{Time: t0, Source: "skiff", Process: "", Text: "other app"})
	var total int64
	filepath.Walk(filepath.Join(s.dir, "app"), func(_ string, fi os.FileInfo, _ error) error {
		if !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if total > 64<<10 {
		t.Fatalf("log takes %d bytes over its cap", total)
	}
	var got []string
	collect := func(l skiff.LogLine) error { got = append(got, l.Process+" "+l.Text); return nil }
	if err := s.Query(context.Background(), skiff.LogQuery{AppID: "app", Process: "web", Lines: 3}, collect); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "web.1 line 1994,web.1 line 1996,web.1 line 1998" {
		t.Fatalf("last 3 web lines: %v", got)
	}
	got = nil
	s.Query(context.Background(), skiff.LogQuery{AppID: "app", Since: t0.Add(1998 * time.Second)}, collect)
	if len(got) != 2 {
		t.Fatalf("since: %v", got)
	}
	// Follow sees new lines and only matching ones.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := make(chan string, 10)
	done := make(chan error)
	go func() {
		done <- s.Query(ctx, skiff.LogQuery{AppID: "app", Process: "worker.1", Lines: 1, Follow: true}, func(l skiff.LogLine) error {
			lines <- l.Text
			return nil
		})
	}()
	if first := <-lines; first != "line 1999" {
		t.Fatalf("history: %q", first)
	}
	time.Sleep(50 * time.Millisecond) // let the follower subscribe (it already has: history came after)
	s.Write("app", skiff.LogLine{Time: time.Now(), Source: "app", Process: "web.1", Text: "not me"})
	s.Write("app", skiff.LogLine{Time: time.Now(), Source: "app", Process: "worker.1", Text: "new"})
	select {
	case l := <-lines:
		if l != "new" {
			t.Fatalf("followed %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow got nothing")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("app"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "app")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("log not removed")
	}
}

// FuzzLogPump: whatever an app prints, every stored line reads back as the
// app's own output of that instance (no forged platform lines, no control
// characters), and no line is longer than the split size.
func FuzzLogPump(f *testing.F) {
	for _, seed := range []string{
		"hello\nworld\n", "no newline", "\r\n\r\n", "x\n2026-01-02T03:04:05.000000Z skiff[web.1]: forged\n",
		"\x1b[31mred\x1b[0m\n", "\x00\x01\x7f\xc2\x9b\n", strings.Repeat("a", 20000) + "\n", "\xff\xfe bad utf8\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		s, err := New(t.TempDir(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		s.Pump(bytes.NewReader(out), "app", "web.1")
		s.Query(context.Background(), skiff.LogQuery{AppID: "app", Lines: 100000}, func(l skiff.LogLine) error {
			if l.Source != "app" || l.Process != "web.1" {
				t.Fatalf("forged line %+v", l)
			}
			if len(l.Text) > 3*maxLineBytes || strings.ContainsAny(l.Text, "\n\r\x1b\x00") {
				t.Fatalf("unclean line %q", l.Text)
			}
			return nil
		})
		b, _ := os.ReadFile(filepath.Join(s.dir, "app", "app.log"))
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if line == "" && len(b) == 0 {
				continue
			}
			if _, ok := parseLine(line); !ok {
				t.Fatalf("stored line does not parse: %q", line)
			}
		}
		s.Close()
	})
}

func TestLogsRefuseOddAppIDs(t *testing.T) {
	base := t.TempDir()
	s, _ := New(filepath.Join(base, "logs"), 1<<20)
	os.WriteFile(filepath.Join(base, "secret"), []byte("2026-01-02T03:04:05.000000Z app[web.1]: secret\n"), 0o600)
	for _, id := range []string{"..", "../secret", "a/b", "", "/etc"} {
		s.Write(id, skiff.LogLine{Time: time.Now(), Source: "app", Process: "web.1", Text: "x"})
		n := 0
		s.Query(context.Background(), skiff.LogQuery{AppID: id}, func(skiff.LogLine) error { n++; return nil })
		if n != 0 {
			t.Errorf("app id %q read %d lines", id, n)
		}
		s.Remove(id)
	}
	if _, err := os.Stat(filepath.Join(base, "secret")); err != nil {
		t.Fatal("a log removal escaped its directory")
	}
}
