package runtime_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/container/containertest"
	"github.com/skiffhq/skiff/internal/testslot"
)

// An instance is ready when it accepts connections itself: something
// else at its address does not count. Its state says up for a while after
// it exited (until its container is deleted), and by then another
// container may hold its /30; here an imposter holds the address (a more
// specific route to a namespace of the test's) while the instance, which
// listens on nothing, still runs.
func TestReadyMeansTheInstanceItself(t *testing.T) {
	f, rt := newRuntime(t)
	in, err := rt.Start(context.Background(), spec(f, "quiet", "sleep", "1h"))
	if err != nil {
		t.Fatal(err)
	}
	var addr netip.AddrPort
	for deadline := time.Now().Add(20 * time.Second); !addr.IsValid(); time.Sleep(20 * time.Millisecond) {
		list, _ := rt.Instances(context.Background(), "quiet-id")
		if len(list) == 1 && list[0].Addr != "" {
			addr = netip.MustParseAddrPort(list[0].Addr)
		}
		if time.Now().After(deadline) {
			t.Fatal("the instance never got an address")
		}
	}
	slot, err := testslot.Get("runtime-imposter")
	if err != nil {
		t.Fatal(err)
	}
	ns, host, peer := "skiff-imp-"+slot.Tag(), "imh"+slot.Tag(), "imp"+slot.Tag()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	ip("link", "set", peer, "netns", ns)
	ip("link", "set", host, "up")
	ip("-n", ns, "link", "set", peer, "up")
	ip("-n", ns, "addr", "add", addr.Addr().String()+"/32", "dev", peer)
	ip("-n", ns, "route", "add", "default", "dev", peer)
	ip("route", "add", addr.Addr().String()+"/32", "dev", host)
	imposter := exec.Command("ip", "netns", "exec", ns, containertest.Probe(t), "serve")
	imposter.Env = append(os.Environ(), "PORT=5000")
	if err := imposter.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = imposter.Process.Kill(); _ = imposter.Wait() })
	// The imposter answers at the instance's address, as a dial by
	// address alone finds.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the imposter does not answer at %s: %v", addr, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rt.WaitReady(ctx, in.ID); err == nil {
		t.Fatal("an instance that listens on nothing was ready: the imposter at its address answered")
	}
}
