package testnet

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The first `ip netns add` after boot binds /run/netns over itself; a
// namespace Listen mounted before must still be removed at the test's end
// (CI failed so, on a fresh machine: unlink EBUSY). The test runs itself
// again in a mount namespace of its own whose /run/netns is a plain
// directory, as after boot.
func TestRemovedAfterIPNetnsAdd(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (network and mount namespaces)")
	}
	if os.Getenv("SKIFF_TESTNET_INNER") == "1" {
		Listen(t, "tq", 252) // 10.252/16: no daemon's default pool (10.213/16), no other test's
		if out, err := exec.Command("ip", "netns", "add", "tqother").CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", "tqother").Run() })
		return
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`umount -l /run/netns 2>/dev/null; exec "$0" -test.run '^TestRemovedAfterIPNetnsAdd$' -test.count=1 -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "SKIFF_TESTNET_INNER=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
}

// Test processes that make /run/netns a mount point at the same instant
// (a fresh boot, several packages' tests starting) leave one bind, not a
// stack of them. The test runs itself again in a mount namespace whose
// /run/netns is a plain directory; its children start together at a
// barrier (their stdin closing) and each makes the mount point.
func TestSharedOnceByConcurrentProcesses(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (mount namespaces)")
	}
	switch os.Getenv("SKIFF_TESTNET_INNER") {
	case "child":
		_, _ = io.Copy(io.Discard, os.Stdin) // the barrier
		if err := shareNetnsDir(); err != nil {
			t.Fatal(err)
		}
		return
	case "parent":
		const n = 8
		var cmds []*exec.Cmd
		var gates []io.Closer
		for range n {
			c := exec.Command(os.Args[0], "-test.run", "^TestSharedOnceByConcurrentProcesses$", "-test.count=1")
			c.Env = append(os.Environ(), "SKIFF_TESTNET_INNER=child")
			w, err := c.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, gates = append(cmds, c), append(gates, w)
		}
		time.Sleep(500 * time.Millisecond) // every child started and waiting
		for _, g := range gates {
			g.Close()
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		binds := 0
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && f[4] == "/run/netns" {
				binds++
			}
		}
		if binds != 1 {
			t.Fatalf("/run/netns is mounted %d times, want once:\n%s", binds, b)
		}
		return
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	for round := range 5 {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`while umount -l /run/netns 2>/dev/null; do :; done; exec "$0" -test.run '^TestSharedOnceByConcurrentProcesses$' -test.count=1 -test.v`, os.Args[0])
		cmd.Env = append(os.Environ(), "SKIFF_TESTNET_INNER=parent")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("round %d: %v:\n%s", round, err, out)
		}
	}
}
