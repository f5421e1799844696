package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/testslot"
)

// A prefix becomes paths that teardown removes (/run/<prefix>, cgroups):
// anything but a plain name is refused before anything is touched.
func TestTeardownRefusesBadPrefix(t *testing.T) {
	for _, p := range []string{"", "..", "../etc", "a/b", "A", "-x", "1abc", "averyveryverylongprefix"} {
		if code := teardown(t.TempDir(), []string{"--resource-prefix", p}); code != 2 {
			t.Errorf("teardown --resource-prefix %q: exit %d, want 2", p, code)
		}
	}
	for _, p := range []string{"skiff", "t1234", "my-skiff"} {
		if err := checkResourcePrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}

// No two daemons' veth prefixes start one with the other, whatever their
// resource prefixes (5 characters in common used to give them one veth
// prefix, and the default's "sk" matched them all).
func TestVethPrefixesNeverOverlap(t *testing.T) {
	prefixes := []string{"skiff", "skiffrt", "skiffbars", "skiffpf", "skiffp", "sk", "s", "t0abc", "t1abc", "t0abd", "a", "a-b", "veth", "v"}
	for i, a := range prefixes {
		va := namesFor(a).vethPrefix
		if len(va) > 7 {
			t.Errorf("%s: veth prefix %q longer than 7", a, va)
		}
		for _, b := range prefixes[i+1:] {
			vb := namesFor(b).vethPrefix
			if strings.HasPrefix(va, vb) || strings.HasPrefix(vb, va) {
				t.Errorf("%s (%s) and %s (%s) overlap", a, va, b, vb)
			}
		}
	}
	// The default keeps its prefix across upgrades; e2e's vethPrefix
	// computes the others the same way.
	if v := namesFor("skiff").vethPrefix; v != "sk" {
		t.Errorf("default veth prefix %q, want sk", v)
	}
	if v := namesFor("t0123").vethPrefix; v != "vd23fb" {
		t.Errorf("t0123: %q", v)
	}
	// A prefix ending in -builds would be another daemon's build cgroup.
	if checkResourcePrefix("skiff-builds") == nil {
		t.Error("skiff-builds accepted as a resource prefix")
	}
	if checkResourcePrefix("skiff-services") == nil {
		t.Error("skiff-services accepted as a resource prefix (another daemon's services' cgroup)")
	}
}

// teardown takes --data after its name, as every command does: here it
// finds the running daemon's socket in that directory and refuses.
func TestTeardownTakesData(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "control.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if code := teardown(filepath.Join(dir, "elsewhere"), []string{"--data", dir, "--resource-prefix", "tdtest"}); code != 1 {
		t.Errorf("teardown --data DIR with a daemon running there: exit %d, want 1", code)
	}
}

// A build cut short by kill -9 leaves its cache's overlay mounted below
// DATA/tmp/builds: teardown unmounts it (and removes the scratch) without
// reaching through it into the cache the overlay's lower directory is.
func TestTeardownUnmountsInterruptedBuilds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts an overlay and tears down host resources")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs runc")
	}
	data := t.TempDir()
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
	slot := testSlot(t)
	if err := runTeardown(data, "td"+slot.Tag(), slot.Pool().String()); err != nil {
		t.Fatal(err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), " "+data+"/") {
		t.Errorf("mounts left under %s:\n%s", data, mi)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("the build's scratch is left: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(lower, "kept")); err != nil || string(b) != "cached" {
		t.Errorf("the build cache lost its file: %q %v", b, err)
	}
}

// Teardown sets nothing up on its way: IPv4 forwarding stays off where it
// was off (it once turned it on while removing the network). Forwarding is
// a network namespace's, so this runs teardown in a fresh one, with its
// forwarding turned off, by running this test binary again there.
func TestTeardownLeavesForwardingAlone(t *testing.T) {
	if os.Getenv("SKIFF_TEST_TEARDOWN_NETNS") != "" {
		// This namespace's own: turning it off touches nothing else.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
		slot := testSlot(t)
		if err := runTeardown(t.TempDir(), "tf"+slot.Tag(), slot.Pool().String()); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "0" {
			t.Fatalf("teardown turned IPv4 forwarding on: %q", b)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace, and teardown")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("needs runc")
	}
	cmd := exec.Command("/usr/bin/unshare", "--net", "--", os.Args[0], "-test.run", "^TestTeardownLeavesForwardingAlone$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "SKIFF_TEST_TEARDOWN_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTeardownLeavesForwardingAlone") {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
}

// testSlot is this test process's slot of the host (internal/testslot):
// names and a pool no other test process uses.
func testSlot(t *testing.T) testslot.Slot {
	t.Helper()
	slot, err := testslot.Get("cmd-skiff")
	if err != nil {
		t.Fatal(err)
	}
	return slot
}
