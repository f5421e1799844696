package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/container/containertest"
	"golang.org/x/sys/unix"
)

var initBin string

// TestMain builds skiff-init once; the tests run it as a child (not pid 1,
// so it is a subreaper), which exercises the same forwarding and reaping.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-init-test-")
	if err != nil {
		panic(err)
	}
	initBin = filepath.Join(dir, "skiff-init")
	build := exec.Command("go", "build", "-o", initBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build skiff-init: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func TestExitStatusPassesThrough(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"sh", "-c", "exit 7"}, 7, ""},
		{[]string{"--", "sh", "-c", "exit 0"}, 0, ""},
		{[]string{"sh", "-c", "kill -USR1 $$"}, 128 + 10, ""},
		{[]string{"sh", "-c", "kill -KILL $$"}, 128 + 9, ""},
		{[]string{"no-such-command"}, 127, "no-such-command"},
		{[]string{"/etc/passwd"}, 126, "permission denied"},
		{nil, 2, "usage"},
	} {
		var out bytes.Buffer
		cmd := exec.Command(initBin, tc.args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if code := exitCode(t, cmd.Run()); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%q: exit %d %q, want %d with %q", tc.args, code, out.String(), tc.code, tc.out)
		}
	}
}

// TestSIGTERMStopsAnAppWithoutHandler: sleep has no SIGTERM handler; as
// pid 1 of a container it would ignore SIGTERM. Behind skiff-init it
// stops at once, and so does every process of its group.
func TestSIGTERMStopsAnAppWithoutHandler(t *testing.T) {
	cmd := exec.Command(initBin, "sh", "-c", "sleep 60 & echo $!; wait")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	bg, _ := strconv.Atoi(strings.TrimSpace(line))
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	code := exitCode(t, cmd.Wait())
	if code != 128+15 || time.Since(t0) > time.Second {
		t.Fatalf("exit %d after %v, want 143 at once", code, time.Since(t0))
	}
	// The background sleep got the SIGTERM too.
	for deadline := time.Now().Add(2 * time.Second); unix.Kill(bg, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the app's background process %d survived", bg)
		}
	}
}

func TestSignalsAreForwarded(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGQUIT, syscall.SIGWINCH} {
		// The app reports the signal it got and exits.
		script := fmt.Sprintf("trap 'echo got; exit 9' %d; echo ready; while :; do sleep 0.05; done", sig)
		cmd := exec.Command(initBin, "sh", "-c", script)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		r.ReadString('\n')
		cmd.Process.Signal(sig)
		got, _ := r.ReadString('\n')
		if code := exitCode(t, cmd.Wait()); code != 9 || got != "got\n" {
			t.Errorf("%v: exit %d, app printed %q", sig, code, got)
		}
	}
}

// TestOrphansAreReaped: the app's children fork grandchildren and exit at
// once; the orphans end while the app still runs, and must not stay
// zombies of skiff-init.
func TestOrphansAreReaped(t *testing.T) {
	cmd := exec.Command(initBin, "sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.1 &); done; echo forked; sleep 2")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	bufio.NewReader(stdout).ReadString('\n')
	time.Sleep(800 * time.Millisecond)
	if z := zombiesOf(cmd.Process.Pid); len(z) > 0 {
		t.Fatalf("zombies left under skiff-init: %v", z)
	}
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(pid int) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestTerminalGoesToTheApp: on a terminal the app runs in the foreground,
// so an interactive shell keeps job control: ctrl-C stops the command it
// runs and its prompt comes back.
func TestTerminalGoesToTheApp(t *testing.T) {
	master, slave := openPty(t)
	defer master.Close()
	cmd := exec.Command(initBin, "sh", "-i")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PS1=PROMPT> ", "TERM=dumb"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	defer cmd.Process.Kill()
	out := &containertest.Buffer{}
	go io.Copy(out, master)
	waitOutput(t, out, "PROMPT> ", 1)
	master.WriteString("sleep 30\n")
	time.Sleep(300 * time.Millisecond)
	master.WriteString("\x03") // ctrl-C
	waitOutput(t, out, "PROMPT> ", 2)
	master.WriteString("echo ok-$((20+22))\n")
	waitOutput(t, out, "ok-42", 1)
	master.WriteString("exit 5\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCode(t, err); code != 5 {
			t.Fatalf("exit %d, output %q", code, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the shell did not exit; output %q", out.String())
	}
}

func waitOutput(t *testing.T, out *containertest.Buffer, s string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Count(out.String(), s) >= n {
			return
		}
	}
	t.Fatalf("no %d× %q in the terminal's output %q", n, s, out.String())
}

// openPty opens a new pseudo-terminal pair.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestExitFile: with --exit-file, the app's status is recorded, for a
// daemon that was not there to see it end.
func TestExitFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status")
	for _, tc := range []struct {
		cmd  string
		code int
	}{{"exit 3", 3}, {"true", 0}, {"kill -TERM $$", 128 + 15}} {
		err := exec.Command(initBin, "--exit-file", path, "--", "sh", "-c", tc.cmd).Run()
		if got := exitCode(t, err); got != tc.code {
			t.Fatalf("%s: exit %d, want %d", tc.cmd, got, tc.code)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != strconv.Itoa(tc.code)+"\n" {
			t.Fatalf("%s: exit file %q %v", tc.cmd, b, err)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("the temporary file is left: %v", err)
	}
}

// TestWaitSize: with --wait-size the command starts only once its
// terminal has a size; with --exec it is the process itself (its pid is
// skiff-init's); a terminal that never gets a size holds it 2 s at most.
func TestWaitSize(t *testing.T) {
	master, slave := openPty(t)
	defer master.Close()
	cmd := exec.Command(initBin, "--wait-size", "--exec", "--", "sh", "-c", `echo "pid $$"; stty size`)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := &containertest.Buffer{}
	go io.Copy(out, master)
	time.Sleep(300 * time.Millisecond)
	if out.String() != "" {
		t.Fatalf("the command ran on a terminal of no size: %q", out.String())
	}
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, "33 101", 1)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("pid %d", cmd.Process.Pid); !strings.Contains(out.String(), want) {
		t.Errorf("--exec: the command is not skiff-init's process (%s): %q", want, out.String())
	}

	master, slave = openPty(t)
	defer master.Close()
	cmd = exec.Command(initBin, "--wait-size", "--", "stty", "size")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out = &containertest.Buffer{}
	go io.Copy(out, master)
	waitOutput(t, out, "0 0", 1)
	if took := time.Since(start); took < 2*time.Second || took > 4*time.Second {
		t.Errorf("a terminal that never got a size held the command %s, want 2 s", took)
	}
	_ = cmd.Wait()

	// Without a terminal there is nothing to wait for.
	start = time.Now()
	if b, err := exec.Command(initBin, "--wait-size", "--exec", "--", "echo", "at once").CombinedOutput(); err != nil || string(b) != "at once\n" {
		t.Fatalf("no terminal: %v %q", err, b)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("without a terminal the command waited %s", took)
	}
}
