package container_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/container/containertest"
)

// TestOwnedMount: a volume directory made by root is handed to the
// container's unprivileged user, who can then write it; what it writes
// stays on the host after the container is gone.
func TestOwnedMount(t *testing.T) {
	e := containertest.New(t)
	vol := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	containertest.OpenPath(t, filepath.Dir(vol))
	root := containertest.Rootfs(t)
	appSpec := func(t *testing.T, id string, args ...string) *container.Spec {
		s := appSpec(t, id, args...)
		s.Rootfs = container.Rootfs{Layers: []string{root}, UpperSize: 1 << 20}
		return s
	}

	s := appSpec(t, "novol", "write", "/data/marker")
	s.Mounts = []container.Mount{{Source: vol, Destination: "/data"}}
	if st, out := runToEnd(t, e, s); st.Code == 0 {
		t.Fatalf("an unowned root directory was writable: %s", out)
	}
	s = appSpec(t, "vol", "write", "/data/marker")
	s.Mounts = []container.Mount{{Source: vol, Destination: "/data", Owned: true}}
	if st, out := runToEnd(t, e, s); st.Code != 0 || !strings.Contains(out, "written") {
		t.Fatalf("write to an owned mount: %v %s", st, out)
	}
	fi, err := os.Stat(filepath.Join(vol, "marker"))
	if err != nil {
		t.Fatal(err)
	}
	want := uint32(container.DefaultIDMap.HostID + 1000)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != want {
		t.Errorf("the file belongs to host uid %d; want %d (the container's 1000)", st.Uid, want)
	}
	// The next container sees it.
	s = appSpec(t, "vol2", "cat", "/data/marker")
	s.Mounts = []container.Mount{{Source: vol, Destination: "/data", Owned: true}}
	if st, out := runToEnd(t, e, s); st.Code != 0 || out != "x" {
		t.Fatalf("read back: %v %q", st, out)
	}
	// A symlink where the directory should be is refused, not followed.
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink("/etc", link)
	s = appSpec(t, "vollink", "status")
	s.Mounts = []container.Mount{{Source: link, Destination: "/data", Owned: true}}
	s.Bundle = filepath.Join(t.TempDir(), s.ID)
	if _, err := e.Runc.Create(context.Background(), s, container.Stdio{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("owned mount of a symlink: %v", err)
	}
	if fi, _ := os.Stat("/etc"); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatal("/etc changed owner")
	}
}

// TestLinks: /app appears as a link to /workspace in a layered root that
// has no /app, and an image's own /app is left alone.
func TestLinks(t *testing.T) {
	e := containertest.New(t)
	root := containertest.Rootfs(t)
	os.MkdirAll(filepath.Join(root, "workspace"), 0o755)
	os.WriteFile(filepath.Join(root, "workspace", "hello"), []byte("hi"), 0o644)
	s := appSpec(t, "links", "cat", "/app/hello")
	s.Rootfs = container.Rootfs{Layers: []string{root}, UpperSize: 1 << 20}
	s.Links = map[string]string{"/app": "/workspace"}
	if st, out := runToEnd(t, e, s); st.Code != 0 || out != "hi" {
		t.Fatalf("/app/hello: %v %q", st, out)
	}
	if _, err := os.Lstat(filepath.Join(root, "app")); !os.IsNotExist(err) {
		t.Fatalf("the lower layer got the link: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "app"), 0o755)
	os.WriteFile(filepath.Join(root, "app", "hello"), []byte("own"), 0o644)
	s = appSpec(t, "ownapp", "cat", "/app/hello")
	s.Rootfs = container.Rootfs{Layers: []string{root}, UpperSize: 1 << 20}
	s.Links = map[string]string{"/app": "/workspace"}
	if st, out := runToEnd(t, e, s); st.Code != 0 || out != "own" {
		t.Fatalf("the image's own /app: %v %q", st, out)
	}
	s = appSpec(t, "badlink", "status")
	s.Rootfs = container.Rootfs{Layers: []string{root}, UpperSize: 1 << 20}
	s.Links = map[string]string{"/a/b": "/x"}
	s.Bundle = filepath.Join(t.TempDir(), s.ID)
	if _, err := e.Runc.Create(context.Background(), s, container.Stdio{}); err == nil {
		t.Fatal("a nested link name was accepted")
	}
}
