package container_test

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/testslot"
)

// Forwarding is written only when it is off, and a host that cannot turn it
// on (a read-only /proc/sys) is told what to set.
func TestEnableForwarding(t *testing.T) {
	dir := t.TempDir()
	on := filepath.Join(dir, "on")
	os.WriteFile(on, []byte("1\n"), 0o644)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(on, old, old)
	if err := container.EnableForwarding(on); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(on); !fi.ModTime().Equal(old) {
		t.Error("forwarding already on was written again")
	}
	off := filepath.Join(dir, "off")
	os.WriteFile(off, []byte("0\n"), 0o644)
	if err := container.EnableForwarding(off); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(off); string(b) != "1" {
		t.Errorf("forwarding off: %q after, want 1", b)
	}
	// A directory cannot be written, by root either: the stand-in for a
	// read-only /proc/sys.
	err := container.EnableForwarding(dir)
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.ip_forward=1") {
		t.Errorf("unwritable: %v, want directions naming net.ipv4.ip_forward=1", err)
	}
}

func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes the host's nftables and routes")
	}
}

// Two networks on one host never match each other's veths: a link prefix
// that another table matches as a wildcard, or that matches one of its, is
// refused.
func TestLinkPrefixOverlapRefused(t *testing.T) {
	requireNetAdmin(t)
	tag, pool := networkSlot(t)
	log := slog.New(slog.DiscardHandler)
	cfg := func(prefix, table string, n int) container.NetworkConfig {
		return container.NetworkConfig{Pool: pool(n), LinkPrefix: prefix,
			Table: table + tag, LockFile: filepath.Join(t.TempDir(), "lock")}
	}
	a := cfg("xo"+tag, "skiffovla", 1)
	if _, err := container.NewNetwork(a, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { container.RemoveNetwork(a) })
	for _, p := range []string{"xo" + tag + "x", "xo" + tag[:1], "xo" + tag} {
		b := cfg(p, "skiffovlb", 2)
		if nw, err := container.NewNetwork(b, log); err == nil {
			container.RemoveNetwork(b)
			t.Errorf("link prefix %q was taken beside %q: %v", p, a.LinkPrefix, nw)
		} else if !strings.Contains(err.Error(), "--resource-prefix") {
			t.Errorf("%q: %v, want directions", p, err)
		}
	}
	b := cfg("xq"+tag, "skiffovlb", 2)
	if _, err := container.NewNetwork(b, log); err != nil {
		t.Errorf("a distinct prefix: %v", err)
	}
	container.RemoveNetwork(b)
	// The same table again (a restart) is no conflict with itself.
	if _, err := container.NewNetwork(a, log); err != nil {
		t.Errorf("the same network again: %v", err)
	}
}

// RemoveNetwork leaves nothing of a network: no table, no pool route, no
// veth with the prefix.
func TestRemoveNetwork(t *testing.T) {
	requireNetAdmin(t)
	tag, pools := networkSlot(t)
	pool := pools(3)
	cfg := container.NetworkConfig{Pool: pool, LinkPrefix: "xr" + tag, Table: "skiffrm" + tag, LockFile: filepath.Join(t.TempDir(), "lock")}
	if _, err := container.NewNetwork(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	// A veth left behind, as a crashed daemon would leave one.
	left := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xr" + tag + "left"}, PeerName: "xp" + tag + "left"}
	if err := netlink.LinkAdd(left); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(left) })
	if err := container.RemoveNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	routes, _ := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: &net.IPNet{IP: pool.Addr().AsSlice(), Mask: net.CIDRMask(pool.Bits(), 32)}}, netlink.RT_FILTER_DST)
	if len(routes) != 0 {
		t.Errorf("pool route left: %v", routes)
	}
	if _, err := netlink.LinkByName("xr" + tag + "left"); err == nil {
		t.Error("veth left")
	}
	out, _ := exec.Command("nft", "list", "tables").Output()
	if strings.Contains(string(out), "skiffrm"+tag) {
		t.Errorf("table left: %s", out)
	}
	// Twice is fine (teardown of a host with nothing left).
	if err := container.RemoveNetwork(cfg); err != nil {
		t.Errorf("second RemoveNetwork: %v", err)
	}
}

// networkSlot is this test process's slot of the host (internal/testslot):
// a tag for names and /24s (n < 16) of a pool no other test process uses.
func networkSlot(t *testing.T) (string, func(n int) netip.Prefix) {
	t.Helper()
	slot, err := testslot.Get("container-network")
	if err != nil {
		t.Fatal(err)
	}
	return slot.Tag(), func(n int) netip.Prefix {
		a := slot.Pool().Addr().As4()
		a[2] += byte(n) //nolint:gosec // n < 16: inside the slot's /20
		return netip.PrefixFrom(netip.AddrFrom4(a), 24)
	}
}
