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

// holdSettles makes p's builds wait before settling until the returned
// release is called with true (settle) or false (stop there, as a daemon
// killed then would). settling receives each build id as it waits.
func holdSettles(t *testing.T, p *Platform) (settling <-chan string, release func(settle bool)) {
	ids, gate := make(chan string, 8), make(chan bool)
	p.settleHook = func(id string) bool {
		select {
		case ids <- id:
		default:
		}
		return <-gate
	}
	released := false
	release = func(settle bool) {
		if !released {
			released = true
			go func() {
				for {
					gate <- settle
				}
			}()
		}
	}
	t.Cleanup(func() { release(true) }) // before Close, which waits for settles
	return ids, release
}

// A build returns once its image is in the store, before its container,
// its cache and its scratch space are dealt with (a push's release need not
// wait for them); the app's next build and PurgeCache wait for them, and
// then nothing of the build is left.
func TestBuildReturnsBeforeItSettles(t *testing.T) {
	ctx := context.Background()
	f := newSynthFixture(t, "settle")
	p := f.p
	settling, release := holdSettles(t, p)

	res, err := f.start("s1", "ok 1", "", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.Image(res.Image); err != nil {
		t.Fatalf("Build returned before its image was in the store: %v", err)
	}
	select {
	case id := <-settling:
		if id != "s1" {
			t.Fatalf("settling %q", id)
		}
	case <-time.After(time.Minute):
		t.Fatal("the build never began to settle")
	}
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "tmp", "builds", "s1")); err != nil {
		t.Fatalf("the scratch space went before the settle: %v", err)
	}

	// The next build of the app waits for the settle, its cache with it.
	next := make(chan error, 1)
	out2 := &syncBuffer{}
	go func() {
		_, err := f.start("s2", "ok 2", res.Image, out2)
		next <- err
	}()
	purged := make(chan error, 1)
	other := &skiff.App{ID: "settle-other", Name: "other"}
	go func() { purged <- p.PurgeCache(ctx, other.ID) }() // another app's: no wait
	if err := <-purged; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-next:
		t.Fatalf("the next build did not wait for the previous one to settle: %v\n%s", err, out2.String())
	case <-time.After(2 * time.Second):
	}
	if s := out2.String(); s != "" {
		t.Fatalf("the next build began before the previous one settled:\n%s", s)
	}
	release(true)
	if err := <-next; err != nil {
		t.Fatalf("next build: %v\n%s", err, out2.String())
	}
	if !strings.Contains(out2.String(), "deps: reused from cache") {
		t.Errorf("the next build did not find the settled build's cache:\n%s", out2.String())
	}
	noBuildLeftovers(t, p, "s1")
	noBuildLeftovers(t, p, "s2")
}

// A daemon killed (kill -9) after a build returned but before it settled
// leaves its container, its cgroup, its cache overlay mounted and its
// scratch space; the next start's Cleanup removes them all, and the app
// builds again.
func TestCleanupSweepsUnsettledBuilds(t *testing.T) {
	ctx := context.Background()
	f := newSynthFixture(t, "unsettled")
	p := f.p
	settling, release := holdSettles(t, p)
	res, err := f.start("u1", "ok 1", "", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	<-settling
	release(false) // the daemon dies here
	p.settles.Wait()
	work := filepath.Join(p.cfg.DataDir, "tmp", "builds", "u1")
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), " "+work+"/layers ") {
		t.Fatalf("the unsettled build's cache overlay is not mounted:\n%s", mi)
	}

	// The next start, on the same data directory and runc state.
	p2 := newTestPlatform(t, Config{DataDir: p.cfg.DataDir, StateDir: p.cfg.StateDir,
		CgroupParent: p.cfg.CgroupParent, LifecycleDir: p.cfg.LifecycleDir})
	if err := p2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	noBuildLeftovers(t, p2, "u1")
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), " "+work) {
		t.Errorf("mounts left under %s:\n%s", work, mi)
	}
	var out bytes.Buffer
	f.p = p2
	if _, err := f.start("u2", "ok 2", res.Image, &out); err != nil {
		t.Fatalf("build after the restart: %v\n%s", err, out.String())
	}
	noBuildLeftovers(t, p2, "u2")
}
