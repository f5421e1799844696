package runtime_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
)

// TestHostileImages: an image whose /dev and /proc are symlinks still gets
// skiff's own; layers with ../, absolute and chained symlinks are confined
// to the image; a hardlink out of its layer is refused; the host is
// untouched either way.
func TestHostileImages(t *testing.T) {
	f, rt := newRuntime(t)
	canary := filepath.Join(t.TempDir(), "canary")
	os.WriteFile(canary, []byte("canary"), 0o644)
	escape := filepath.Join(t.TempDir(), "escape")
	os.Mkdir(escape, 0o755)

	symDirs := testImage(t, f.images, layerOf(t,
		tarEntry{name: "dev", typ: tar.TypeSymlink, link: "/"},
		tarEntry{name: "proc", typ: tar.TypeSymlink, link: "/etc"},
		tarEntry{name: "sys", typ: tar.TypeSymlink, link: "../../.."},
	))
	s := spec(f, "symdirs")
	s.Image = symDirs
	in, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	up := ready(t, rt, in.ID)
	if body := get(t, "http://"+up.Addr+"/"); !strings.Contains(body, "hello") {
		t.Fatalf("body %q", body)
	}

	escapes := testImage(t, f.images, layerOf(t,
		tarEntry{name: "../../../../../.." + escape + "/dotdot", typ: tar.TypeReg, mode: 0o644},
		tarEntry{name: "pwn", typ: tar.TypeSymlink, link: escape},
		tarEntry{name: "pwn/through-abs", typ: tar.TypeReg, mode: 0o644},
		tarEntry{name: "a", typ: tar.TypeSymlink, link: "b"},
		tarEntry{name: "b", typ: tar.TypeSymlink, link: "/"},
		tarEntry{name: "a" + escape + "/chained", typ: tar.TypeReg, mode: 0o644},
	))
	s = spec(f, "escapes")
	s.Image = escapes
	in, err = rt.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	ready(t, rt, in.ID)
	if ents, _ := os.ReadDir(escape); len(ents) != 0 {
		t.Fatalf("a layer wrote outside its root: %v", ents[0].Name())
	}

	hardlink := testImage(t, f.images, layerOf(t, tarEntry{name: "l", typ: tar.TypeLink, link: canary}))
	s = spec(f, "hardlink")
	s.Image = hardlink
	if _, err := rt.Start(context.Background(), s); err == nil {
		t.Fatal("a layer hardlinking outside itself was accepted")
	}
	var st os.FileInfo
	if st, err = os.Stat(canary); err != nil || st.Size() != 6 {
		t.Fatal("canary changed")
	}
}

// TestInterruptedStartIsCleaned: a container created for an instance whose
// record was never written (the daemon died in Start) is removed by the
// next runtime, with its mounts.
func TestInterruptedStartIsCleaned(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(f.cfg.DataDir, "instances", "half.web.1.dead")
	os.MkdirAll(dir, 0o711)
	// Unpack the test image's layers through a first runtime.
	rt := f.open(t)
	in, err := rt.Start(context.Background(), spec(f, "warm"))
	if err != nil {
		t.Fatal(err)
	}
	rt.Stop(context.Background(), in.ID, 0)
	rt.Close()
	lower, _ := filepath.Glob(filepath.Join(f.cfg.DataDir, "layers", "*"))
	_, err = f.env.Runc.Create(context.Background(), &container.Spec{
		ID: "half.web.1.dead", Bundle: dir, Rootfs: container.Rootfs{Layers: lower, UpperSize: 1 << 20},
		Args: []string{"/app/probe", "sleep", "1h"}, UserNS: true, Network: true,
	}, container.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	rt = f.open(t)
	defer stopAll(t, rt)
	if list, _ := rt.Instances(context.Background(), ""); len(list) != 0 {
		t.Fatalf("adopted a half-started instance: %+v", list)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("its directory is still there")
	}
	// The leak check at cleanup covers runc state, cgroups, veths, mounts.
}

func TestPruneLayersKeepsWhatRuns(t *testing.T) {
	f, rt := newRuntime(t)
	extra := testImage(t, f.images, layerOf(t, tarEntry{name: "extra", typ: tar.TypeReg, mode: 0o644}))
	s := spec(f, "prune")
	s.Image = extra
	in, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	// Unpack the plain image's layer too, then let it go.
	s2 := spec(f, "gone")
	s2.Image = f.image
	in2, err := rt.Start(context.Background(), s2)
	if err != nil {
		t.Fatal(err)
	}
	rt.Stop(context.Background(), in2.ID, 0)
	before, _ := filepath.Glob(filepath.Join(f.cfg.DataDir, "layers", "*"))
	if len(before) != 2 {
		t.Fatalf("layers: %v", before)
	}
	// Nothing is kept by the caller, but the running instance keeps both
	// of its layers (the base layer is shared with the plain image).
	if err := rt.PruneLayers(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(f.cfg.DataDir, "layers", "*"))
	if len(after) != 2 {
		t.Fatalf("a running instance's layer was removed: %v", after)
	}
	rt.Stop(context.Background(), in.ID, 0)
	if err := rt.PruneLayers(context.Background(), []string{f.image}); err != nil {
		t.Fatal(err)
	}
	after, _ = filepath.Glob(filepath.Join(f.cfg.DataDir, "layers", "*"))
	if len(after) != 1 {
		t.Fatalf("after pruning all but the plain image: %v", after)
	}
}

// TestImageUserNames: an image config may name its user (USER app,
// USER app:staff); the names are looked up in the image's own
// /etc/passwd and /etc/group, never the host's, and an unknown one is the
// user's error.
func TestImageUserNames(t *testing.T) {
	f, rt := newRuntime(t)
	group := layerOf(t, tarEntry{name: "etc/group", typ: tar.TypeReg, mode: 0o644, body: []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")})
	run := func(user string, extra ...v1.Layer) (string, error) {
		t.Helper()
		s := spec(f, "named")
		s.Image = testImageAs(t, f.images, user, extra...)
		var out bytes.Buffer
		code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *s, Args: []string{"status"}, Stdout: &out})
		if err == nil && code != 0 {
			t.Fatalf("%s: exit %d %s", user, code, out.String())
		}
		return out.String(), err
	}
	for user, want := range map[string][]string{
		"app":       {"Uid: 1000 1000 1000 1000", "Gid: 1000 1000 1000 1000", "Groups: 50"},
		"app:staff": {"Uid: 1000 1000 1000 1000", "Gid: 50 50 50 50"},
		"1000:app":  {"Uid: 1000 1000 1000 1000", "Gid: 1000 1000 1000 1000"},
	} {
		out, err := run(user, group)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("USER %s: no %q in\n%s", user, w, out)
			}
		}
	}
	if _, err := run("nobody", group); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := run("app:wheel", group); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), `"wheel"`) {
		t.Errorf("unknown group: %v", err)
	}
	s := spec(f, "named")
	s.Image = testImageAs(t, f.images, "nobody", group)
	if _, err := rt.Start(context.Background(), s); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("Start with an unknown user: %v", err)
	}
	// An /etc/passwd that links to a host file names nobody.
	host := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(host, []byte("hostonly:x:1000:1000::/:/\n"), 0o644)
	escape := layerOf(t, tarEntry{name: "etc/passwd", typ: tar.TypeSymlink, link: host})
	if _, err := run("hostonly", escape); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("the host's passwd was read: %v", err)
	}
}
