// Package testnet gives tests an address beyond the host: a network
// namespace of the test's own, reached from the host over a veth, that
// stays on this machine. Builds and apps may not reach the host's own
// services, so a server they must reach (a registry, a package index) runs
// there. It needs root.
package testnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/testslot"
)

// Listen returns a TCP listener on a fresh namespace's end of a veth
// whose host end is <prefix><tag>h, in 10.<octet>.<slot>.0/30, where tag
// and slot are the test process's slot of the host (internal/testslot):
// no other test process uses them. The namespace and the veth go when the
// test ends. The prefix must not be "sk": skiff treats links named so as
// its containers'.
func Listen(t testing.TB, prefix string, octet int) net.Listener {
	t.Helper()
	slot, err := testslot.Get("testnet")
	if err != nil {
		t.Fatal(err)
	}
	name := prefix + slot.Tag()
	hostIf, peerIf := name+"h", name+"p"
	base := fmt.Sprintf("10.%d.%d.", octet, slot.Octet())
	type result struct {
		ln  net.Listener
		err error
	}
	if err := shareNetnsDir(); err != nil {
		t.Fatalf("/run/netns: %v", err)
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // the thread's namespace changes; it dies with it
		orig, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			return
		}
		ns, err := netns.NewNamed(name)
		if err != nil {
			ch <- result{err: err}
			return
		}
		fail := func(err error) { _ = netns.Set(orig); ch <- result{err: err} } // the thread is locked and dies with the goroutine anyway
		if err := netns.Set(orig); err != nil {
			fail(err)
			return
		}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: peerIf}); err != nil {
			fail(err)
			return
		}
		host, err := netlink.LinkByName(hostIf)
		if err != nil {
			fail(err)
			return
		}
		peer, err := netlink.LinkByName(peerIf)
		if err != nil {
			fail(err)
			return
		}
		if err := netlink.LinkSetNsFd(peer, int(ns)); err != nil {
			fail(err)
			return
		}
		addr, _ := netlink.ParseAddr(base + "1/30")
		if err := netlink.AddrAdd(host, addr); err != nil {
			fail(err)
			return
		}
		if err := netlink.LinkSetUp(host); err != nil {
			fail(err)
			return
		}
		if err := netns.Set(ns); err != nil {
			fail(err)
			return
		}
		if peer, err = netlink.LinkByName(peerIf); err != nil {
			fail(err)
			return
		}
		paddr, _ := netlink.ParseAddr(base + "2/30")
		if err := netlink.AddrAdd(peer, paddr); err != nil {
			fail(err)
			return
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			fail(err)
			return
		}
		if lo, err := netlink.LinkByName("lo"); err == nil {
			if err := netlink.LinkSetUp(lo); err != nil {
				fail(err)
				return
			}
		}
		ln, err := net.Listen("tcp", base+"2:0")
		_ = netns.Set(orig) // as in fail
		ch <- result{ln: ln, err: err}
	}()
	r := <-ch
	t.Cleanup(func() {
		if r.ln != nil {
			r.ln.Close()
		}
		if l, err := netlink.LinkByName(hostIf); err == nil {
			_ = netlink.LinkDel(l) // the namespace's removal takes its end with it
		}
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("remove the test's network namespace: %v (its mounts: %s)", err, mountsOf(name))
		}
	})
	if r.err != nil {
		t.Fatalf("listen beyond the host: %v", r.err)
	}
	return r.ln
}

// shareNetnsDir makes /run/netns a shared mount point of its own, as
// iproute2's `ip netns add` does when it is not one yet (the first time
// after boot). Otherwise the first `ip netns add` after this package
// mounted a namespace there (other packages' tests run beside this one)
// would bind /run/netns over itself and hide that mount beneath: its path
// then reaches no mount and the file stays a mount point, so the cleanup's
// unlink fails with EBUSY (seen in CI, on a fresh machine).
func shareNetnsDir() error {
	const dir = "/run/netns"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Two test processes doing this at once would both find no mount
	// point and stack two binds; one at a time, the second finds the
	// first's. (iproute2 takes no lock to share it with.)
	lock, err := os.OpenFile("/run/skiff-testnet-netns.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // which releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point yet
		return err
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// mountsOf returns the lines of this process's mountinfo that name the
// namespace, for an error that says what holds it.
func mountsOf(name string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "/run/netns/"+name+" ") {
			out = append(out, l)
		}
	}
	return fmt.Sprintf("%q", out)
}
