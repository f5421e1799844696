// Package testguard cleans up after a test binary that dies without doing
// it itself: killed by go test's timeout, by kill -9, by CI. The guard is
// a process of the binary's own (the binary run again with SKIFF_TESTGUARD
// set; TestMain calls Main first) in a session of its own. The binary
// tells it, one JSON line each over a pipe only the binary holds open,
// which processes to stop, which commands to run and which paths to
// remove; at end of file (the binary is gone, however it went) it stops
// the processes (SIGTERM, then SIGKILL after 30 s), runs the commands in
// order and removes the paths, the last registered first. A binary that
// ends its own way calls Done first, and the guard does nothing.
package testguard

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const envVar = "SKIFF_TESTGUARD"

type op struct {
	Op   string   `json:"op"` // kill, run, cancel, rm, done
	Pid  int      `json:"pid,omitempty"`
	Key  string   `json:"key,omitempty"`
	Argv []string `json:"argv,omitempty"`
	Path string   `json:"path,omitempty"`
}

var guard struct {
	mu  sync.Mutex
	w   *os.File // nil: no guard
	pid int
}

// Main runs the guard, and exits, when this process is one; else it
// returns at once. TestMain calls it first.
func Main() {
	if os.Getenv(envVar) != "" {
		os.Exit(run())
	}
}

// Start starts this binary's guard.
func Start() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0]) //nolint:gosec // this test binary, run again as its guard
	cmd.Env = append(os.Environ(), envVar+"=1")
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	// A session of its own: a signal to the binary's process group (a
	// terminal's ctrl-C, a kill of the group) does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	go func() { _ = cmd.Wait() }()
	guard.mu.Lock()
	guard.w, guard.pid = w, cmd.Process.Pid
	guard.mu.Unlock()
	return nil
}

// Pid is the pid of this binary's guard, 0 if it has none.
func Pid() int {
	guard.mu.Lock()
	defer guard.mu.Unlock()
	return guard.pid
}

func send(o op) {
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if guard.w == nil {
		return
	}
	b, _ := json.Marshal(o)
	_, _ = guard.w.Write(append(b, '\n'))
}

// Kill has the guard stop process pid (the guard holds a pidfd of it from
// now on, so a pid reused later is never signalled).
func Kill(pid int) { send(op{Op: "kill", Pid: pid}) }

// Run has the guard run argv, after the kills; key names it for Cancel.
func Run(key string, argv ...string) { send(op{Op: "run", Key: key, Argv: argv}) }

// Cancel forgets the commands registered under key.
func Cancel(key string) { send(op{Op: "cancel", Key: key}) }

// Remove has the guard remove path and what is below it, last.
func Remove(path string) { send(op{Op: "rm", Path: path}) }

// Done tells the guard that the binary cleaned up itself: it leaves.
func Done() {
	send(op{Op: "done"})
	guard.mu.Lock()
	defer guard.mu.Unlock()
	if guard.w != nil {
		guard.w.Close()
		guard.w = nil
	}
}

func run() int {
	// Nothing stops it but the end of its input; a write to a pipe that
	// went with the binary fails instead of killing it.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGQUIT)
	type proc struct{ pid, pidfd int }
	var procs []proc
	var cmds []op
	var rms []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var o op
		if json.Unmarshal(sc.Bytes(), &o) != nil {
			continue
		}
		switch o.Op {
		case "done":
			return 0
		case "kill":
			if fd, err := unix.PidfdOpen(o.Pid, 0); err == nil {
				procs = append(procs, proc{o.Pid, fd})
			}
		case "run":
			cmds = append(cmds, o)
		case "cancel":
			cmds = slices.DeleteFunc(cmds, func(c op) bool { return c.Key == o.Key })
		case "rm":
			rms = append(rms, o.Path)
		}
	}
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "testguard: "+format+"\n", args...) }
	say("the test binary ended without cleaning up: stopping %d process(es), running %d command(s), removing %d path(s)", len(procs), len(cmds), len(rms))
	for _, p := range procs {
		_ = unix.PidfdSendSignal(p.pidfd, unix.SIGTERM, nil, 0)
	}
	for _, p := range procs {
		if !Exited(p.pidfd, 30*time.Second) {
			say("pid %d did not stop within 30 s of SIGTERM: SIGKILL", p.pid)
			_ = unix.PidfdSendSignal(p.pidfd, unix.SIGKILL, nil, 0)
			Exited(p.pidfd, 10*time.Second)
		}
		unix.Close(p.pidfd)
	}
	for _, c := range cmds {
		if len(c.Argv) == 0 {
			continue
		}
		if out, err := exec.Command(c.Argv[0], c.Argv[1:]...).CombinedOutput(); err != nil { //nolint:gosec // the test binary's own commands
			say("%v: %v\n%s", c.Argv, err, out)
		}
	}
	for _, p := range slices.Backward(rms) {
		if err := os.RemoveAll(p); err != nil {
			say("%v", err)
		}
	}
	return 0
}

// Exited waits up to d for the process behind pidfd to exit.
func Exited(pidfd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}} //nolint:gosec // descriptors fit in an int32
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
	return false
}
