package build

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/imagestore"
)

func TestBuildRefusedWhenDiskIsLow(t *testing.T) {
	dir := t.TempDir()
	s, err := imagestore.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{DataDir: dir, Store: s, MinFreeBytes: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: "a1", Name: "a"}, BuildID: "b1"}, &out)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "not enough free disk space") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildWithoutBuilder(t *testing.T) {
	dir := t.TempDir()
	s, _ := imagestore.Open(filepath.Join(dir, "images"))
	p, err := New(Config{DataDir: dir, Store: s, MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: "a1", Name: "a"}, BuildID: "b1"}, &bytes.Buffer{})
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "builder:create") {
		t.Fatalf("err = %v", err)
	}
	for _, id := range []string{"", "../x", "A", "-x", strings.Repeat("a", 65)} {
		_, err = p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: id, Name: "a"}, BuildID: "b1"}, &bytes.Buffer{})
		if skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("app id %q: %v", id, err)
		}
	}
}

func TestBuildsQueueBeyondTheLimit(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{MaxConcurrent: 1})
	builder := synthBuilder(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := p.Build(ctx, &skiff.BuildRequest{App: &skiff.App{ID: "q1", Name: "q1"}, BuildID: "q1", Builder: builder,
			Source: tarOf(t, map[string]string{"synth.txt": "sleep"})}, &bytes.Buffer{})
		first <- err
	}()
	for len(p.sem) == 0 {
		select {
		case err := <-first:
			t.Fatalf("first build ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	second := make(chan error, 1)
	var out syncBuffer
	go func() {
		_, err := p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: "q2", Name: "q2"}, BuildID: "q2", Builder: builder,
			Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &out)
		second <- err
	}()
	for !strings.Contains(out.String(), "Waiting for other builds") {
		select {
		case err := <-second:
			t.Fatalf("second build did not wait: %v\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.Cancel("q1")
	if err := <-second; err != nil {
		t.Fatalf("queued build: %v", err)
	}
	<-first
}
