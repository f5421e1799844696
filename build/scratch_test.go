package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// What a build killed with the daemon (kill -9) leaves in DATA/tmp/builds,
// its cache's overlay mounted, is gone after the next start's Cleanup,
// and the cache below the overlay keeps its files.
func TestCleanupUnmountsInterruptedBuilds(t *testing.T) {
	requireRoot(t)
	data := openDataDir(t)
	lower := filepath.Join(data, "cache", "app", "layers")
	work := filepath.Join(data, "tmp", "builds", "b-killed")
	for _, d := range []string{lower, filepath.Join(work, "layers"), filepath.Join(work, "layers-upper"), filepath.Join(work, "layers-work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "kept"), []byte("cached"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/layers-upper,workdir=%s/layers-work", lower, work, work)
	if err := unix.Mount("overlay", filepath.Join(work, "layers"), "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(work, "layers"), unix.MNT_DETACH) })
	p := newTestPlatform(t, Config{DataDir: data, LifecycleDir: t.TempDir()})
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), " "+work+"/") {
		t.Errorf("mounts left under %s:\n%s", work, mi)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("the build's scratch is left: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(lower, "kept")); err != nil || string(b) != "cached" {
		t.Errorf("the build cache lost its file: %q %v", b, err)
	}
}
