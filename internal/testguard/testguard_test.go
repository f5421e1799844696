package testguard_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/testguard"
)

func TestMain(m *testing.M) {
	testguard.Main()
	os.Exit(m.Run())
}

// child runs TestChild in a binary of its own, with mode, and returns what
// it registered (once it said so) and the child itself.
func child(t *testing.T, mode string) (*exec.Cmd, map[string]any) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTGUARD_CHILD="+mode, "TESTGUARD_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if b, ok := strings.CutPrefix(sc.Text(), "CHILD "); ok {
			var got map[string]any
			if err := json.Unmarshal([]byte(b), &got); err != nil {
				t.Fatal(err)
			}
			return cmd, got
		}
	}
	t.Fatal("the child said nothing")
	return nil, nil
}

func pidfdOf(t *testing.T, v any) int {
	t.Helper()
	fd, err := unix.PidfdOpen(int(v.(float64)), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
	return fd
}

// A binary killed with kill -9 leaves nothing: its process is stopped,
// its command run after that (not the one it cancelled), and its directory
// removed.
func TestGuardCleansUpAfterKill9(t *testing.T) {
	cmd, got := child(t, "die")
	fd := pidfdOf(t, got["pid"])
	dir, marker := got["dir"].(string), got["marker"].(string)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if !testguard.Exited(fd, 40*time.Second) {
		t.Fatal("the binary's process outlived it")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is left", dir)
		}
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "ran after the kill\n" {
		t.Errorf("the command: %q %v", b, err)
	}
	if _, err := os.Stat(marker + ".x"); !os.IsNotExist(err) {
		t.Errorf("a cancelled command ran: %v", err)
	}
}

// A binary that cleaned up itself and said so is left alone.
func TestGuardLeavesAfterDone(t *testing.T) {
	cmd, got := child(t, "done")
	fd := pidfdOf(t, got["pid"])
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if testguard.Exited(fd, 2*time.Second) {
		t.Error("the guard stopped a process after Done")
	}
	if _, err := os.Stat(got["dir"].(string)); err != nil {
		t.Errorf("the guard removed a directory after Done: %v", err)
	}
}

// TestChild is the binary the tests above kill.
func TestChild(t *testing.T) {
	mode := os.Getenv("TESTGUARD_CHILD")
	if mode == "" {
		t.Skip("run by the tests above")
	}
	if err := testguard.Start(); err != nil {
		t.Fatal(err)
	}
	base := os.Getenv("TESTGUARD_DIR")
	dir := filepath.Join(base, "scratch")
	os.MkdirAll(filepath.Join(dir, "deep"), 0o755)
	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(base, "marker")
	testguard.Kill(sleeper.Process.Pid)
	// Runs after the kill: it says so only if the sleeper is gone.
	// (Gone, or a zombie its new parent has not reaped yet.)
	testguard.Run("m", "sh", "-c", fmt.Sprintf(`s=$(cut -d' ' -f3 /proc/%d/stat 2>/dev/null); if [ -z "$s" ] || [ "$s" = Z ]; then echo ran after the kill > %s; fi`, sleeper.Process.Pid, marker))
	testguard.Run("x", "sh", "-c", "echo cancelled > "+marker+".x")
	testguard.Cancel("x")
	testguard.Remove(dir)
	if mode == "done" {
		testguard.Done()
	}
	b, _ := json.Marshal(map[string]any{"pid": sleeper.Process.Pid, "dir": dir, "marker": marker})
	fmt.Printf("CHILD %s\n", b)
	time.Sleep(5 * time.Minute)
}
