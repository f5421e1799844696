package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/testguard"
)

// guardDaemon has the test binary's guard (internal/testguard) stop the
// daemon process cmd, and tear down the host resources its arguments name
// (--resource-prefix, --network-pool), if the binary dies before it does
// (go test's timeout, kill -9): else the daemon ran on, orphaned, with its
// apps, veths and mounts.
func guardDaemon(cmd *exec.Cmd, data string) {
	testguard.Kill(cmd.Process.Pid)
	args := cmd.Args
	if i := slices.Index(args, "--resource-prefix"); i >= 0 && i+1 < len(args) {
		td := []string{skiffBin, "--data", data, "teardown", "--resource-prefix", args[i+1]}
		if j := slices.Index(args, "--network-pool"); j >= 0 && j+1 < len(args) {
			td = append(td, "--network-pool", args[j+1])
		}
		testguard.Run(data, td...)
	}
}

// When the test binary dies with kill -9 while a daemon of its runs, its
// guard stops the daemon, tears down what the daemon put on the host and
// removes its directory.
func TestDaemonsEndWithTheTestBinary(t *testing.T) {
	if os.Getenv("SKIFF_E2E_GUARD_CHILD") != "" {
		t.Skip("the child's own run")
	}
	child := exec.Command(os.Args[0], "-test.run", "^TestGuardChild$", "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), "SKIFF_E2E_GUARD_CHILD=1", "SKIFF_E2E_BIN="+skiffBin)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = child.Stdout
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	var got struct {
		Pid                     int
		Dir, Data, Prefix, Pool string
	}
	var log []string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		log = append(log, sc.Text())
		if b, ok := strings.CutPrefix(sc.Text(), "GUARDCHILD "); ok {
			if err := json.Unmarshal([]byte(b), &got); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got.Pid == 0 {
		_ = child.Wait()
		t.Fatalf("the child started no daemon:\n%s", strings.Join(log, "\n"))
	}
	pidfd, err := unix.PidfdOpen(got.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if !testguard.Exited(pidfd, 60*time.Second) {
		_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		t.Fatalf("the daemon (pid %d) outlived its test binary by a minute", got.Pid)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(got.Dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is left after the test binary died", got.Dir)
		}
	}
	if got.Prefix != "" { // torn down before the directory went
		if _, err := os.Stat("/run/" + got.Prefix); !os.IsNotExist(err) {
			t.Errorf("/run/%s is left: %v", got.Prefix, err)
		}
		if out, _ := exec.Command("ip", "route", "show", "type", "unreachable").Output(); strings.Contains(string(out), got.Pool) {
			t.Errorf("the pool's route is left:\n%s", out)
		}
		if out, _ := exec.Command("nft", "list", "tables").Output(); strings.Contains(string(out), " "+got.Prefix+"\n") {
			t.Errorf("the firewall table is left:\n%s", out)
		}
	}
}

// TestGuardChild is the test binary the test above kills: it starts a
// daemon (one that runs apps, as root: its host resources are made at
// start), says where, and waits to die.
func TestGuardChild(t *testing.T) {
	if os.Getenv("SKIFF_E2E_GUARD_CHILD") == "" {
		t.Skip("run by TestDaemonsEndWithTheTestBinary")
	}
	dir := sandboxDir(t)
	d := &daemon{t: t, dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer)}
	var hr struct{ prefix, pool string }
	if os.Geteuid() == 0 {
		hr = hostResources(5)
		d.start("--resource-prefix", hr.prefix, "--network-pool", hr.pool, "--acme-ca", "")
	} else {
		d.start("--git-only")
	}
	b, _ := json.Marshal(map[string]any{"pid": d.cmd.Process.Pid, "dir": dir, "data": d.data, "prefix": hr.prefix, "pool": hr.pool})
	fmt.Printf("GUARDCHILD %s\n", b)
	time.Sleep(5 * time.Minute)
	t.Error("not killed within 5 minutes")
}
