package container_test

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/container/containertest"
	"github.com/skiffhq/skiff/internal/testslot"
)

// TestEgressIsMasqueraded: a container reaches an "internet" host (a
// network namespace this test makes, 198.18.0.0/15 is for benchmarks) and
// that host sees the connection coming from the host, not the container.
func TestEgressIsMasqueraded(t *testing.T) {
	e := containertest.New(t)
	// Names and addresses of this process's slot of the host.
	slot, err := testslot.Get("container-egress")
	if err != nil {
		t.Fatal(err)
	}
	ns := "skiff-ext-" + slot.Tag()
	hostIf, extIf := "ne"+slot.Tag(), "nf"+slot.Tag()
	hostIP, extIP := fmt.Sprintf("198.18.%d.1", slot.Octet()), fmt.Sprintf("198.18.%d.2", slot.Octet())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip("link", "add", hostIf, "type", "veth", "peer", "name", extIf)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostIf).Run() })
	ip("link", "set", extIf, "netns", ns)
	ip("addr", "add", hostIP+"/24", "dev", hostIf)
	ip("link", "set", hostIf, "up")
	ip("-n", ns, "addr", "add", extIP+"/24", "dev", extIf)
	ip("-n", ns, "link", "set", extIf, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	server := exec.Command("ip", "netns", "exec", ns, containertest.Probe(t), "serve")
	server.Env = []string{"PORT=9999"}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	// The host reaches it (so the path exists) before the container tries.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", extIP+":9999", time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("test server unreachable: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, out := runToEnd(t, e, appSpec(t, "egress", "get", "http://"+extIP+":9999/peer"))
	if st.Code != 0 || !strings.HasPrefix(out, hostIP+":") {
		t.Fatalf("egress: %v %q (want a connection from %s)", st, out, hostIP)
	}
}
