package build

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/layer"
)

// An overlay's upper directory as a layer: unpacked over the lower one's
// layer, it gives what the overlay's merged view showed, deletions
// (whiteouts) and emptied directories (opaque) included.
func TestOverlayUpperLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts an overlay: needs root")
	}
	dir := t.TempDir()
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, body := range map[string]string{"etc/keep": "k", "etc/gone": "g", "usr/share/doc/a": "a", "usr/share/doc/b": "b", "bin/tool": "1"} {
		os.MkdirAll(filepath.Join(lower, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(lower, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(merged, "etc/gone"))
	os.RemoveAll(filepath.Join(merged, "usr/share/doc"))
	os.MkdirAll(filepath.Join(merged, "usr/share/doc"), 0o755)
	os.WriteFile(filepath.Join(merged, "usr/share/doc/c"), []byte("c"), 0o644)
	os.WriteFile(filepath.Join(merged, "bin/tool"), []byte("2"), 0o755)
	want := treeOf(t, merged)
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}

	flat := t.TempDir()
	for _, src := range []struct {
		dir   string
		upper bool
	}{{lower, false}, {upper, true}} {
		var buf bytes.Buffer
		tb := newTarBuilder(&buf)
		tb.overlayUpper = src.upper
		if err := tb.tree(src.dir, "/", true); err != nil {
			t.Fatal(err)
		}
		tb.close()
		if _, err := layer.Extract(context.Background(), &buf, flat, layer.Options{Whiteouts: layer.ApplyWhiteouts}); err != nil {
			t.Fatal(err)
		}
	}
	if got := treeOf(t, flat); !slices.Equal(got, want) {
		t.Errorf("the layers unpacked give\n%s\nthe merged view was\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel += " " + string(b)
		}
		out = append(out, rel)
		return nil
	})
	return out
}
