package testnet

import (
	"os"
	"os/exec"
	"testing"
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
