package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// What a build wrote is summed: new files (a hardlink once), what files
// that were there grew by, not the files lent to it, not an overlay mount.
func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("x", n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("layout/blob", 4<<20)       // lent before the build
	write("workspace/src.js", 1<<20)  // the source
	write("layers/merged/big", 8<<20) // seen through the overlay: skipped
	u := newDiskUsage(dir, filepath.Join(dir, "layers"))
	if n := u.bytes(); n != 0 {
		t.Fatalf("before the build: %d bytes", n)
	}
	write("tmp/new", 2<<20)
	os.Link(filepath.Join(dir, "tmp/new"), filepath.Join(dir, "tmp/again"))
	f, _ := os.OpenFile(filepath.Join(dir, "workspace/src.js"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte(strings.Repeat("y", 3<<20)))
	f.Close()
	got := u.bytes()
	if want := int64(5 << 20); got < want || got > want+1<<20 {
		t.Errorf("%d bytes written, want about %d", got, want)
	}
	if s := skiff.FormatSize(8 << 30); s != "8 GiB" {
		t.Errorf("sizeText: %s", s)
	}
}

// A build that writes more than its budget is stopped with a message that
// says so, long before it is done, and its files are removed.
func TestBuildOverItsDiskBudget(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{Limits: Limits{Timeout: 2 * time.Minute, Disk: 256 << 20}})
	builder := synthBuilder(t, p)
	var out bytes.Buffer
	start := time.Now()
	_, err := p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: "budget", Name: "budget"}, BuildID: "budget1",
		Builder: builder, Source: tarOf(t, map[string]string{"synth.txt": "fill 2048"})}, &out)
	if err == nil || !strings.Contains(err.Error(), "the build wrote more than 256 MiB") || !strings.Contains(err.Error(), "--build-disk") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("stopped after %s", took)
	}
	noBuildLeftovers(t, p, "budget1")
}
