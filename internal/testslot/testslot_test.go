package testslot

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testguard"
)

const childEnv = "SKIFF_TESTSLOT_CHILD"

func TestMain(m *testing.M) {
	testguard.Main()
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child takes slot "x" with a guard that outlives it by its cleanup (a
// 2 s command), prints the slot and waits to be killed.
func child() int {
	if err := testguard.Start(); err != nil {
		fmt.Println("guard:", err)
		return 1
	}
	testguard.Run("x", "sleep", "2")
	s, err := Get("x")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(s.N, testguard.Pid())
	select {}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the slots' lock files are in /run")
	}
}

// startChild runs a process holding slot "x" and returns it, its slot and
// its guard's pid.
func startChild(t *testing.T) (*exec.Cmd, int, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("child: %q", line)
	}
	n, _ := strconv.Atoi(f[0])
	g, _ := strconv.Atoi(f[1])
	return cmd, n, g
}

func TestSlotsAreNamedAndExclusive(t *testing.T) {
	requireRoot(t)
	a, err := Get("a")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Get("a"); again != a {
		t.Errorf("Get(a) again: %v, then %v", a, again)
	}
	b, err := Get("b")
	if err != nil || b == a {
		t.Errorf("Get(b): %v %v, beside a's %v", b, err, a)
	}
	if a.Pool().Overlaps(b.Pool()) || a.Tag() == b.Tag() || a.Octet() == b.Octet() {
		t.Errorf("slots %v and %v share a pool or a tag: %v %v %s %s", a, b, a.Pool(), b.Pool(), a.Tag(), b.Tag())
	}
	// Another process never gets a slot this one holds.
	for range 3 {
		_, n, _ := startChild(t)
		if n == a.N || n == b.N {
			t.Errorf("another process got slot %d, which this one holds (%v, %v)", n, a, b)
		}
	}
}

// A slot whose holder died is not free until its guard has cleaned up:
// the guard tears down by the slot's names, and must not tear down a new
// holder's.
func TestSlotWaitsForItsGuard(t *testing.T) {
	requireRoot(t)
	cmd, n, guard := startChild(t)
	if f, ok, err := lock(n); err != nil || ok {
		if f != nil {
			f.Close()
		}
		t.Fatalf("slot %d was taken while its holder lives: %v %v", n, ok, err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if f, ok, err := lock(n); err != nil || ok {
		if f != nil {
			f.Close()
		}
		t.Fatalf("slot %d was taken while its holder's guard (pid %d) cleans up: %v %v", n, guard, ok, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(guard, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the guard %d did not end", guard)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f, ok, err := lock(n)
	if err != nil || !ok {
		t.Fatalf("slot %d after its guard ended: %v %v", n, ok, err)
	}
	f.Close()
}

func TestPools(t *testing.T) {
	seen := map[string]bool{}
	for n := range Slots {
		s := Slot{N: n}
		p := s.Pool()
		if p.Bits() != 20 || !netipMust("10.224.0.0/12").Contains(p.Addr()) || seen[p.String()] || seen[s.Tag()] || len(s.Tag()) != 2 {
			t.Fatalf("slot %d: pool %v tag %q", n, p, s.Tag())
		}
		seen[p.String()], seen[s.Tag()] = true, true
	}
	for _, daemon := range []string{"10.213.0.0/16", "10.216.0.0/16", "10.217.0.0/16", "10.254.0.0/16"} {
		for n := range Slots {
			if (Slot{N: n}).Pool().Overlaps(netipMust(daemon)) {
				t.Fatalf("slot %d overlaps %s", n, daemon)
			}
		}
	}
}

func netipMust(s string) netip.Prefix { return netip.MustParsePrefix(s) }
