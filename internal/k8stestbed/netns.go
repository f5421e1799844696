package k8stestbed

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// The cluster lives in network namespaces of its own, bound to files in the
// test bed's directory: net1 holds the control plane and the first node, net2
// the second node. A veth pair joins them (both ends start in net1; the
// second node takes one). Nothing listens on the host, and no host
// interface, route, firewall rule or sysctl is touched.

const (
	node1IP  = "10.250.0.10"
	node2IP  = "10.250.0.11"
	nodeMask = "/24"
	gateway  = "10.250.0.1" // a default route that goes nowhere: some components want one
)

// podCIDR is node n's pod range (n from 1).
func podCIDR(n int) string { return fmt.Sprintf("10.244.%d.0/24", n-1) }

// inNetns runs a command inside the network namespace file ns.
func inNetns(ns string, argv ...string) error {
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns, "--"}, argv...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// makeNetns creates a persistent network namespace bound to the file ns.
func makeNetns(ns string) error {
	if out, err := exec.Command("unshare", "--net="+ns, "true").CombinedOutput(); err != nil {
		return fmt.Errorf("unshare --net: %v: %s", err, out)
	}
	return inNetns(ns, "ip", "link", "set", "lo", "up")
}

// removeNetns unbinds the namespace file; the namespace goes when nothing
// is left in it.
func removeNetns(ns string) error {
	if out, err := exec.Command("umount", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("umount %s: %v: %s", ns, err, out)
	}
	return nil
}

// firstNetns sets up net1: lo, the veth pair (tb0 = node 1's address),
// forwarding (for pods of the second node), and the route nowhere.
func firstNetns(ns string) error {
	if err := makeNetns(ns); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"ip", "link", "add", "tb0", "type", "veth", "peer", "name", "tb1"},
		{"ip", "addr", "add", node1IP + nodeMask, "dev", "tb0"},
		{"ip", "link", "set", "tb0", "up"},
		{"ip", "link", "set", "tb1", "up"},
		{"ip", "route", "add", "default", "via", gateway, "dev", "tb0", "onlink"},
		{"/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"}, // this namespace's own
	} {
		if err := inNetns(ns, argv...); err != nil {
			return err
		}
	}
	return nil
}

// secondNetns makes net2 and moves tb1 into it as node 2's address, with
// routes to each node's pods through the other node.
func secondNetns(first, second string) error {
	if err := makeNetns(second); err != nil {
		return err
	}
	if err := inNetns(first, "ip", "link", "set", "tb1", "netns", second); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"ip", "addr", "add", node2IP + nodeMask, "dev", "tb1"},
		{"ip", "link", "set", "tb1", "up"},
		{"ip", "route", "add", "default", "via", gateway, "dev", "tb1", "onlink"},
		{"ip", "route", "add", podCIDR(1), "via", node1IP},
		{"/bin/sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"}, // this namespace's own
	} {
		if err := inNetns(second, argv...); err != nil {
			return err
		}
	}
	return inNetns(first, "ip", "route", "add", podCIDR(2), "via", node2IP)
}

// within runs fn on a thread that has entered the network namespace file
// ns; sockets fn makes stay in that namespace.
func within(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := netns.GetFromPath(ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread() // else the thread ends with the goroutine
		}
		errc <- nil
	}()
	return <-errc
}

// dialIn opens a connection from inside the network namespace file ns.
func dialIn(ctx context.Context, ns, network, addr string) (c net.Conn, err error) {
	if werr := within(ns, func() {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
	}); werr != nil {
		return nil, werr
	}
	return c, err
}

// listenIn listens on addr inside the network namespace file ns.
func listenIn(ns, network, addr string) (l net.Listener, err error) {
	if werr := within(ns, func() { l, err = net.Listen(network, addr) }); werr != nil {
		return nil, werr
	}
	return l, err
}
