// Package containertest sets up real containers for tests of the packages
// built on internal/container: a static probe program to run inside them, a
// Runc and a Network private to the test process, and a leak check.
package containertest

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/testslot"
	"github.com/vishvananda/netlink"
	"log/slog"
)

// RequireRoot skips the test unless it runs as root with runc installed.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers under runc")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs runc")
	}
}

// binary is a program of this module built once per test process.
type binary struct {
	once sync.Once
	path string
	err  error
}

var probe, initProg binary

// build builds the main package in dir (relative to this file) into a
// directory the containers' mapped root can traverse.
func (b *binary) build(t testing.TB, dir, name string) string {
	t.Helper()
	b.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), dir)
		out, err := os.MkdirTemp("", "skiff-"+name+"-")
		if err != nil {
			b.err = err
			return
		}
		if b.err = os.Chmod(out, 0o711); b.err != nil {
			return
		}
		b.path = filepath.Join(out, name)
		cmd := exec.Command("go", "build", "-o", b.path, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", name, err, msg)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Probe returns the path of the static probe binary (see testdata/probe),
// built once per test process.
func Probe(t testing.TB) string { return probe.build(t, "../testdata/probe", "probe") }

// Init returns the path of skiff-init (cmd/skiff-init), built once per
// test process, for Spec.Init.
func Init(t testing.TB) string {
	p := initProg.build(t, "../../../cmd/skiff-init", "skiff-init")
	OpenPath(t, filepath.Dir(p))
	return p
}

// Env is a Runc and Network private to one test.
type Env struct {
	Runc          *container.Runc
	Network       *container.Network
	NetworkConfig container.NetworkConfig // what Network was made with
	Prefix        string                  // veth prefix
	Parent        string                  // cgroup parent
	State         string                  // runc state dir
	tmp           string                  // the test's temporary directories live below it
}

// New returns an Env whose names are unique to this test process; Cleanup
// removes its nftables table and checks that nothing leaked.
func New(t testing.TB) *Env {
	t.Helper()
	RequireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The test process's own slot of the host (internal/testslot): a pool
	// no other process uses (a /30 one frees is the next another takes,
	// and a dial of a deleted container's address would reach another
	// process's container), and fixed-length names, so that no test
	// process's veth prefix starts with another's (the network refuses
	// one that would). Its letters are ones no test used before the
	// slots' two-digit tags, whose three-digit names a killed binary's
	// leftover table may still match.
	slot, err := testslot.Get("containertest")
	if err != nil {
		t.Fatal(err)
	}
	tag := slot.Tag()
	e := &Env{Prefix: "ct" + tag, Parent: "skiff-test-" + tag, State: t.TempDir()}
	e.tmp = filepath.Dir(e.State)
	e.NetworkConfig = container.NetworkConfig{
		Pool: slot.Pool(), LinkPrefix: e.Prefix, Table: "skiffct" + tag,
	}
	nw, err := container.NewNetwork(e.NetworkConfig, log)
	if err != nil {
		t.Fatal(err)
	}
	e.Network = nw
	r, err := container.New(context.Background(), container.Config{StateDir: e.State, CgroupParent: e.Parent, Network: nw, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.Runc = r
	t.Cleanup(func() {
		_ = r.Close()
		e.CheckNoLeaks(t)
		// The table and the pool's route.
		if err := container.RemoveNetwork(e.NetworkConfig); err != nil {
			t.Errorf("remove the test's network: %v", err)
		}
		// runc makes the parent cgroup and leaves it; it is this test's.
		ctls, _ := os.ReadDir("/sys/fs/cgroup")
		os.Remove(filepath.Join("/sys/fs/cgroup", e.Parent))
		for _, c := range ctls {
			os.Remove(filepath.Join("/sys/fs/cgroup", c.Name(), e.Parent))
		}
	})
	return e
}

// CheckNoLeaks fails the test if any container, cgroup, veth or mount of
// this Env is left on the host.
func (e *Env) CheckNoLeaks(t testing.TB) {
	t.Helper()
	if states, err := e.Runc.List(context.Background()); err != nil || len(states) != 0 {
		t.Errorf("runc containers left: %+v %v", states, err)
	}
	for _, ctl := range []string{"", "memory", "pids", "cpu", "freezer"} {
		ents, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", ctl, e.Parent))
		for _, en := range ents {
			if en.IsDir() {
				t.Errorf("cgroup left: %s/%s/%s", ctl, e.Parent, en.Name())
			}
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, e.Prefix) {
			t.Errorf("veth left: %s", l.Attrs().Name)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, " "+e.tmp+"/") {
			t.Errorf("mount left: %s", line)
		}
	}
}

// Rootfs makes a minimal root directory holding the probe at /probe,
// traversable by a user namespace's root.
func Rootfs(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"", "etc", "tmp", "dev", "proc", "sys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(Probe(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	OpenPath(t, dir)
	return dir
}

// OpenPath makes every directory from p up to / traversable (0711 at
// least): runc reaches a user-namespaced container's files as its mapped
// root, and t.TempDir makes 0700 directories.
func OpenPath(t testing.TB, p string) {
	for d := p; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o011 != 0o011 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BusyboxRootfs is Rootfs with a static busybox as /bin/sh, /bin/sleep and
// the like: real programs without signal handlers, and a shell with job
// control. The test is skipped where Debian's busybox-static is missing.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	const bb = "/bin/busybox"
	f, err := elf.Open(bb)
	if err != nil {
		t.Skipf("needs a static %s (apt-get install busybox-static): %v", bb, err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Skipf("%s is dynamically linked: needs busybox-static", bb)
		}
	}
	dir := Rootfs(t)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sh", "sleep", "echo", "kill", "cat", "ps"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Buffer is a bytes.Buffer safe for one writer and concurrent readers:
// where a test collects a container's output while it runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
