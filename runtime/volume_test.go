package runtime_test

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// TestVolumeMounts: a volume mounted into one-off runs and instances is
// writable by the app's user and outlives each container; another app's
// containers do not see it.
func TestVolumeMounts(t *testing.T) {
	f := newFixture(t)
	vols := filepath.Join(f.cfg.DataDir, "volumes")
	os.MkdirAll(vols, 0o711)
	f.cfg.VolumePath = func(id string) (string, error) { return filepath.Join(vols, id), nil }
	rt := f.open(t)
	t.Cleanup(func() { stopAll(t, rt) })
	os.Mkdir(filepath.Join(vols, "vol-1"), 0o700)
	ctx := context.Background()
	mount := []skiff.Mount{{Volume: "vol-1", Path: "/data"}}

	run := func(app string, mounts []skiff.Mount, args ...string) (int, string) {
		var out strings.Builder
		s := spec(f, app)
		s.Mounts = mounts
		code, err := rt.Run(ctx, &skiff.RunRequest{Spec: *s, Args: args, Stdout: &out, Stderr: &out})
		if err != nil {
			t.Fatalf("run %v: %v", args, err)
		}
		return code, out.String()
	}
	if code, out := run("shop", mount, "write", "/data/marker"); code != 0 {
		t.Fatalf("write: %d %s", code, out)
	}
	if code, out := run("shop", mount, "cat", "/data/marker"); code != 0 || out != "x" {
		t.Fatalf("read back in a new run: %d %q", code, out)
	}
	if code, out := run("other", nil, "cat", "/data/marker"); code == 0 {
		t.Fatalf("an app without the mount read it: %q", out)
	}
	// An instance gets it too.
	s := spec(f, "shop", "write", "/data/from-instance")
	s.Mounts = mount
	in, err := rt.Start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Stop(ctx, in.ID, 0)
	waitLog(t, rt, "shop-id", "app[web.1]: written")
	if b, err := os.ReadFile(filepath.Join(vols, "vol-1", "from-instance")); err != nil || string(b) != "x" {
		t.Fatalf("the instance's file on the host: %q %v", b, err)
	}
	// A volume whose directory is gone fails the start with what to do.
	s = spec(f, "shop")
	s.Mounts = []skiff.Mount{{Volume: "vol-2", Path: "/gone"}}
	if _, err := rt.Start(ctx, s); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(skiff.ErrorMessage(err), "missing on this server") {
		t.Fatalf("start with a missing volume: %v", err)
	}
}

func waitLog(t *testing.T, rt interface {
	Logs(context.Context, skiff.LogQuery, func(skiff.LogLine) error) error
}, appID, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sb strings.Builder
		rt.Logs(context.Background(), skiff.LogQuery{AppID: appID, Lines: 10000}, func(l skiff.LogLine) error {
			sb.WriteString(l.Source + "[" + l.Process + "]: " + l.Text + "\n")
			return nil
		})
		if strings.Contains(sb.String(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log never showed %q:\n%s", want, sb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVolumeMountThroughSymlinks: an image whose mount point is a symlink
// out of its root (absolute, or by ../) gets the volume inside its own
// root, or is refused; the host's directory the link names is neither
// mounted over nor written.
func TestVolumeMountThroughSymlinks(t *testing.T) {
	f := newFixture(t)
	vols := filepath.Join(f.cfg.DataDir, "volumes")
	os.MkdirAll(vols, 0o711)
	f.cfg.VolumePath = func(id string) (string, error) { return filepath.Join(vols, id), nil }
	escape := filepath.Join(t.TempDir(), "escape")
	os.Mkdir(escape, 0o755)
	img := testImage(t, f.images, layerOf(t,
		tarEntry{name: "abs", typ: tar.TypeSymlink, link: escape},
		tarEntry{name: "rel", typ: tar.TypeSymlink, link: "../../../../../../../.." + escape},
		tarEntry{name: "app/storage", typ: tar.TypeSymlink, link: "/abs"},
	))
	rt := f.open(t)
	t.Cleanup(func() { stopAll(t, rt) })
	ctx := context.Background()
	for i, at := range []string{"/abs", "/rel", "/app/storage"} {
		vol := fmt.Sprintf("vol-%d", i)
		os.Mkdir(filepath.Join(vols, vol), 0o700)
		s := spec(f, "links")
		s.Image = img
		s.Mounts = []skiff.Mount{{Volume: vol, Path: at}}
		var out strings.Builder
		code, err := rt.Run(ctx, &skiff.RunRequest{Spec: *s, Args: []string{"write", at + "/marker"}, Stdout: &out, Stderr: &out})
		t.Logf("%s: exit %d, %v: %s", at, code, err, strings.TrimSpace(out.String()))
		if err == nil && code == 0 {
			if b, err := os.ReadFile(filepath.Join(vols, vol, "marker")); err != nil || string(b) != "x" {
				t.Errorf("%s: the write went elsewhere than the volume: %q %v (%s)", at, b, err, out.String())
			}
		}
		if ents, _ := os.ReadDir(escape); len(ents) != 0 {
			t.Fatalf("%s: the host's %s got %s (%s)", at, escape, ents[0].Name(), out.String())
		}
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), escape) {
			t.Fatalf("%s: the host's %s is a mount point", at, escape)
		}
	}
}
