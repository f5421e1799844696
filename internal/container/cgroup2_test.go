package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeUnified is a directory laid out like a cgroup v2 hierarchy, with the
// kernel's side played by the hooks: making a cgroup populates its files
// (cgroup.controllers from the parent's cgroup.subtree_control, a
// controller's files when it is enabled for it), and writing
// cgroup.subtree_control enforces what the kernel does: only controllers in
// cgroup.controllers, and not in a cgroup (other than the root) that holds
// processes. Every write is recorded, in order.
type fakeUnified struct {
	t      *testing.T
	root   string
	swap   bool // memory.swap.max exists (swap accounting)
	writes []string
}

func newFakeUnified(t *testing.T, swap bool) *fakeUnified {
	f := &fakeUnified{t: t, root: t.TempDir(), swap: swap}
	f.files(f.root, "cpuset cpu io memory hugetlb pids rdma misc", "")
	writeFiles(t, f.root, map[string]string{"cgroup.procs": "1\n"})
	return f
}

func (f *fakeUnified) fs() cgroupFS {
	return cgroupFS{root: f.root, v2: true, mkdirHook: f.mkdir, writeHook: f.write}
}

func (f *fakeUnified) rel(p string) string {
	r, _ := filepath.Rel(f.root, p)
	return "/" + r
}

// files lays out a cgroup's interface files as the kernel documents them.
func (f *fakeUnified) files(dir, controllers, procs string) {
	files := map[string]string{
		"cgroup.controllers": controllers + "\n", "cgroup.subtree_control": "\n", "cgroup.procs": procs,
		"cgroup.events": "populated 0\nfrozen 0\n", "cgroup.kill": "", "cgroup.freeze": "0\n",
		"cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
	}
	if dir != f.root {
		ctl := strings.Fields(controllers)
		if slices.Contains(ctl, "memory") {
			files["memory.max"], files["memory.current"] = "max\n", "0\n"
			files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
			files["memory.oom.group"] = "0\n"
			if f.swap {
				files["memory.swap.max"], files["memory.swap.current"] = "max\n", "0\n"
			}
		}
		if slices.Contains(ctl, "cpu") {
			files["cpu.max"] = "max 100000\n"
		}
		if slices.Contains(ctl, "pids") {
			files["pids.max"], files["pids.current"] = "max\n", "0\n"
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fakeUnified) mkdir(dir string) error {
	f.writes = append(f.writes, "mkdir "+f.rel(dir))
	if err := os.Mkdir(dir, 0o755); errors.Is(err, os.ErrExist) {
		return nil
	} else if err != nil {
		return err
	}
	parentOn := readTrim(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"))
	f.files(dir, parentOn, "")
	return nil
}

func (f *fakeUnified) write(path, value string) error {
	f.writes = append(f.writes, fmt.Sprintf("%s < %s", f.rel(path), value))
	if filepath.Base(path) != "cgroup.subtree_control" {
		return writeCgroup(path, value)
	}
	dir := filepath.Dir(path)
	if dir != f.root && readTrim(filepath.Join(dir, "cgroup.procs")) != "" {
		return fmt.Errorf("write %s: device or resource busy", path) // the no-internal-process rule
	}
	have := strings.Fields(readTrim(filepath.Join(dir, "cgroup.controllers")))
	on := strings.Fields(readTrim(path))
	for _, w := range strings.Fields(value) {
		c := strings.TrimPrefix(w, "+")
		if !slices.Contains(have, c) {
			return fmt.Errorf("write %s: no such file or directory (%s is not in cgroup.controllers)", path, c)
		}
		if !slices.Contains(on, c) {
			on = append(on, c)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(on, " ")+"\n"), 0o644)
}

// The parent is readied in the kernel's order: cpu, memory and pids are
// enabled in the root's subtree_control before the parent is made, then in
// the parent's, so every container cgroup runc makes below it gets
// cpu.max, memory.max, memory.swap.max and pids.max; a restart writes
// nothing more.
func TestPrepareUnifiedOrder(t *testing.T) {
	f := newFakeUnified(t, true)
	swap, err := f.fs().prepareUnified("skiff")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/cgroup.subtree_control < +cpu +memory +pids", "mkdir /skiff", "/skiff/cgroup.subtree_control < +cpu +memory +pids"}
	if !slices.Equal(f.writes, want) {
		t.Errorf("writes:\n%s\nwant:\n%s", strings.Join(f.writes, "\n"), strings.Join(want, "\n"))
	}
	if !swap {
		t.Error("swap accounting not seen")
	}
	// What runc makes for a container then has the limit files.
	if err := f.mkdir(filepath.Join(f.root, "skiff", "web.1")); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"cpu.max", "memory.max", "memory.swap.max", "memory.oom.group", "pids.max", "cgroup.kill", "cgroup.events", "memory.events"} {
		if _, err := os.Stat(filepath.Join(f.root, "skiff", "web.1", file)); err != nil {
			t.Errorf("container cgroup lacks %s", file)
		}
	}
	f.writes = nil
	if _, err := f.fs().prepareUnified("skiff"); err != nil || len(f.writes) != 1 || f.writes[0] != "mkdir /skiff" {
		t.Errorf("again: %v %v", f.writes, err)
	}
	// A nested parent: each level in turn.
	f.writes = nil
	if _, err := f.fs().prepareUnified("a/b"); err != nil {
		t.Fatal(err)
	}
	want = []string{"mkdir /a", "/a/cgroup.subtree_control < +cpu +memory +pids", "mkdir /a/b", "/a/b/cgroup.subtree_control < +cpu +memory +pids"}
	if !slices.Equal(f.writes, want) {
		t.Errorf("nested writes:\n%s", strings.Join(f.writes, "\n"))
	}
}

// What the kernel would refuse is refused first, with a message: a parent
// holding processes (the no-internal-process rule), a controller the host
// does not offer.
func TestPrepareUnifiedRefusals(t *testing.T) {
	f := newFakeUnified(t, true)
	os.MkdirAll(filepath.Join(f.root, "skiff"), 0o755)
	f.files(filepath.Join(f.root, "skiff"), "cpu memory pids", "4242\n")
	if _, err := f.fs().prepareUnified("skiff"); err == nil || !strings.Contains(err.Error(), "no-internal-process") {
		t.Errorf("a parent with processes: %v", err)
	}
	g := newFakeUnified(t, true)
	writeFiles(t, g.root, map[string]string{"cgroup.controllers": "cpu pids\n"})
	if _, err := g.fs().prepareUnified("skiff"); err == nil || !strings.Contains(err.Error(), "the memory controller is not available") {
		t.Errorf("no memory controller: %v", err)
	}
	if len(g.writes) != 0 {
		t.Errorf("wrote before refusing: %v", g.writes)
	}
}

// Without swap accounting there is no memory.swap.max: the spec asks runc
// for no swap limit (runc cannot make a cgroup whose memory.swap.max it is
// told to write and that does not exist), and keeps the memory limit and
// the group OOM kill.
func TestSwapFallback(t *testing.T) {
	f := newFakeUnified(t, false)
	swap, err := f.fs().prepareUnified("skiff")
	if err != nil || swap {
		t.Fatalf("swap %v %v", swap, err)
	}
	l := Limits{MemoryBytes: 64 << 20, CPU: 0.5, Pids: 64}
	res := resources(l, true, swap)
	if res.Memory == nil || res.Memory.Limit == nil || *res.Memory.Limit != 64<<20 || res.Memory.Swap != nil || res.Unified["memory.oom.group"] != "1" {
		t.Errorf("no swap accounting: %+v %v", res.Memory, res.Unified)
	}
	res = resources(l, true, true)
	if res.Memory.Swap == nil || *res.Memory.Swap != 64<<20 {
		t.Errorf("swap accounting: %+v", res.Memory)
	}
	if res = resources(l, false, false); res.Memory.Swap != nil || res.Unified != nil {
		t.Errorf("v1: %+v %v", res.Memory, res.Unified)
	}
	if res.CPU == nil || *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 || res.Pids == nil || res.Pids.Limit == nil || *res.Pids.Limit != 64 {
		t.Errorf("cpu and pids: %+v %+v", res.CPU, res.Pids)
	}
	// The systemd driver's view: the daemon's own cgroup tells.
	s := newFakeUnified(t, false)
	s.mkdir(filepath.Join(s.root, "system.slice"))
	if s.fs().swapAccounting("/system.slice") {
		t.Error("no swap accounting read as some")
	}
	s.write(filepath.Join(s.root, "cgroup.subtree_control"), "+memory")
	s.swap = true
	os.RemoveAll(filepath.Join(s.root, "system.slice"))
	s.mkdir(filepath.Join(s.root, "system.slice"))
	if !s.fs().swapAccounting("/nowhere", "/system.slice") {
		t.Error("swap accounting not read")
	}
}

// Where systemd runs the unified hierarchy each container is a transient
// scope in the parent's own slice (runc's systemd driver, which makes it
// with Delegate=yes); stats and kills find it there, and Cleanup lists
// only this parent's scopes.
func TestSystemdLayout(t *testing.T) {
	inst := cgroupLayout{systemd: true, parent: "skiff"}
	builds := cgroupLayout{systemd: true, parent: "skiff-builds"}
	if got := inst.runcPath("app.web.1.ab12"); got != "skiff.slice:skiff:app.web.1.ab12" {
		t.Errorf("runc path %q", got)
	}
	if got := inst.dir("app.web.1.ab12"); got != "/skiff.slice/skiff-app.web.1.ab12.scope" {
		t.Errorf("dir %q", got)
	}
	// Every cgroup of the daemon is under its own slice: its builds' and
	// services' slices nest in it (a '-' in a slice's name means nesting).
	if got := builds.runcPath("build-7"); got != "skiff-builds.slice:skiff-builds:build-7" {
		t.Errorf("builds runc path %q", got)
	}
	if got := builds.dir("build-7"); got != "/skiff.slice/skiff-builds.slice/skiff-builds-build-7.scope" {
		t.Errorf("builds dir %q", got)
	}
	services := cgroupLayout{systemd: true, parent: "skiff-services"}
	if got := services.dir("pg.1"); got != "/skiff.slice/skiff-services.slice/skiff-services-pg.1.scope" {
		t.Errorf("services dir %q", got)
	}
	// A '-' of the prefix itself nests nothing.
	other := cgroupLayout{systemd: true, parent: "my-skiff-builds"}
	if got := other.dir("b"); got != "/my_skiff.slice/my_skiff-builds.slice/my-skiff-builds-b.scope" {
		t.Errorf("my-skiff's builds dir %q", got)
	}
	root := t.TempDir()
	for _, d := range []string{"skiff.slice/skiff-a.web.1.x.scope", "skiff.slice/skiff-b.web.1.y.scope", "skiff.slice/other.scope",
		"skiff.slice/skiff-builds.slice/skiff-builds-build-7.scope", "skiff.slice/skiff.service"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	fs := cgroupFS{root: root, v2: true}
	if got := strings.Join(inst.ids(fs), ","); got != "a.web.1.x,b.web.1.y" {
		t.Errorf("instance scopes %q", got)
	}
	if got := strings.Join(builds.ids(fs), ","); got != "build-7" {
		t.Errorf("build scopes %q", got)
	}
	// cgroupfs keeps <parent>/<id>.
	if l := (cgroupLayout{parent: "skiff"}); l.runcPath("x") != "/skiff/x" || l.dir("x") != "/skiff/x" {
		t.Errorf("cgroupfs layout: %q %q", l.runcPath("x"), l.dir("x"))
	}
}

// The unit skiff installs runs the daemon in skiff.slice, beside its
// containers' scopes, and does not claim its own cgroup for them
// (Delegate=yes there would make a restart fail while they run).
func TestServiceUnitSlice(t *testing.T) {
	unit, err := os.ReadFile("../../contrib/skiff.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nSlice=skiff.slice\n") {
		t.Error("skiff.service is not in skiff.slice")
	}
	if strings.Contains(string(unit), "\nDelegate=yes") {
		t.Error("skiff.service delegates its own cgroup")
	}
}

// On the kernel's own v2 hierarchy (a v2 host's, or a hybrid host's
// second mount, whose controllers all belong to v1): readying works where
// cpu, memory and pids are offered, and says which one is not otherwise.
func TestPrepareUnifiedOnTheKernel(t *testing.T) {
	fs := cgroupFS{root: unifiedMount(t), v2: true}
	parent := fmt.Sprintf("skiff-prep-%d", os.Getpid())
	defer os.Remove(filepath.Join(fs.root, parent))
	have := strings.Fields(readTrim(filepath.Join(fs.root, "cgroup.controllers")))
	_, err := fs.prepareUnified(parent)
	for _, c := range limitedControllers {
		if !slices.Contains(have, c) {
			if err == nil || !strings.Contains(err.Error(), "the "+c+" controller is not available") {
				t.Fatalf("without %s (%v): %v", c, have, err)
			}
			return
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if on := readTrim(filepath.Join(fs.root, parent, "cgroup.subtree_control")); !strings.Contains(on, "memory") {
		t.Errorf("%s's subtree_control: %q", parent, on)
	}
}
