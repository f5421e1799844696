package build

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/skiffhq/skiff"
)

// fakeInternet starts a TCP server in a network namespace of the test's
// own, reached from the host over a veth: an address beyond the host, as
// a registry would be, that stays on this machine.
func fakeInternet(t *testing.T) string {
	t.Helper()
	// Not "sk…": skiff's own rules treat links with that prefix as app
	// containers', and a running skiff (or the runtime's tests) would
	// drop traffic to them.
	name := fmt.Sprintf("fnet%d", os.Getpid()%100000)
	hostIf, peerIf := name+"h", name+"p"
	base := fmt.Sprintf("10.250.%d.", os.Getpid()%250)
	type result struct {
		ln  net.Listener
		err error
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
		fail := func(err error) { netns.Set(orig); ch <- result{err: err} }
		if err := netns.Set(orig); err != nil {
			fail(err)
			return
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: peerIf}
		if err := netlink.LinkAdd(veth); err != nil {
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
		if err := netlink.AddrAdd(veth, addr); err != nil {
			fail(err)
			return
		}
		if err := netlink.LinkSetUp(veth); err != nil {
			fail(err)
			return
		}
		if err := netns.Set(ns); err != nil {
			fail(err)
			return
		}
		peer, err = netlink.LinkByName(peerIf)
		if err != nil {
			fail(err)
			return
		}
		paddr, _ := netlink.ParseAddr(base + "2/30")
		netlink.AddrAdd(peer, paddr)
		netlink.LinkSetUp(peer)
		if lo, err := netlink.LinkByName("lo"); err == nil {
			netlink.LinkSetUp(lo)
		}
		ln, err := net.Listen("tcp", base+"2:0")
		netns.Set(orig)
		ch <- result{ln: ln, err: err}
	}()
	r := <-ch
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(hostIf); err == nil {
			netlink.LinkDel(l)
		}
		netns.DeleteNamed(name)
	})
	if r.err != nil {
		t.Fatalf("fake internet: %v", r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	go func() {
		for {
			c, err := r.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return r.ln.Addr().String()
}

func TestBuildNetwork(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{Network: testNetwork(t)}) // egress for npm and the Go module proxy
	builder := synthBuilder(t, p)
	internet := fakeInternet(t)

	// A service on the host's loopback, and one on all host addresses.
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	any, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	_, anyPort, _ := net.SplitHostPort(any.Addr().String())
	hostIP := hostAddress(t)

	for i, c := range []struct {
		target string
		ok     bool
	}{
		{internet, true},
		{lo.Addr().String(), false},
		{net.JoinHostPort(hostIP, anyPort), false},
		{"169.254.169.254:80", false},
	} {
		var out bytes.Buffer
		_, err := p.Build(context.Background(), &skiff.BuildRequest{
			App: &skiff.App{ID: "net", Name: "net"}, BuildID: fmt.Sprintf("n%d", i), Builder: builder,
			Source: tarOf(t, map[string]string{"synth.txt": "connect " + c.target}),
		}, &out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.target, err, out.String())
		}
		got := strings.Contains(out.String(), "connect "+c.target+": ok")
		if got != c.ok {
			t.Errorf("connect %s from a build: reachable=%v, want %v\n%s", c.target, got, c.ok, out.String())
		}
	}
}

// hostAddress returns a non-loopback IPv4 address of the host.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "10.250.") {
			return ipn.IP.String()
		}
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}
