// Command skiff-init is the first process of every app instance and one-off
// run. The kernel gives the first process of a pid namespace no default
// signal actions, so an app without a SIGTERM handler (python's
// http.server, sleep, most shell scripts) would ignore the SIGTERM of a
// stop and wait out the whole grace period; and orphans would stay zombies,
// since nobody else waits for them. skiff-init runs the app as its child
// in a process group of its own, forwards the signals a stop, a terminal or
// an operator sends to that group, reaps every process that ends, and exits
// as the app did (128+n when signal n killed it).
//
//	skiff-init [--exit-file PATH] [--wait-size] [--exec] [--] command [args…]
//
// With --exit-file it writes the app's exit status ("3\n") to PATH when
// the app has ended, replacing the file in one rename: a daemon that was
// not running when a one-off ended learns how it ended from there.
//
// With --wait-size, on a terminal, the command starts only once the
// terminal has a size (2 s at most): skiff gives a one-off exec'd into a
// running container (postgres:connect) the client's size, but runc 1.1
// passes it on only after the process started, and a quick program
// (stty, psql) read 0×0. With --exec skiff-init becomes the command
// instead of running it as its child: an exec into a running container,
// whose own init reaps.
//
// With a terminal (a one-off `run` with a TTY) the app's process group is
// made the terminal's foreground group, so ctrl-C, job control and a
// shell's prompt work as in a login. Outside a container (not pid 1) it
// makes itself a child subreaper, so that orphans are still its to reap.
//
// It is built static (CGO_ENABLED=0) and bind-mounted read-only into the
// container, whatever the image holds.
package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwarded are the signals passed on to the app's process group.
var forwarded = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// ignored are caught only so that skiff-init itself never stops; caught,
// not ignored, because an ignored disposition would pass on to the app.
var ignored = []os.Signal{unix.SIGTTIN, unix.SIGTTOU, unix.SIGTSTP, unix.SIGPIPE}

func init() { goruntime.GOMAXPROCS(1) }

func main() {
	args := os.Args[1:]
	exitFile, waitForSize, execIt := "", false, false
flags:
	for len(args) > 0 {
		switch args[0] {
		case "--exit-file":
			if len(args) < 2 {
				args = nil
				break flags
			}
			exitFile, args = args[1], args[2:]
		case "--wait-size":
			waitForSize, args = true, args[1:]
		case "--exec":
			execIt, args = true, args[1:]
		case "--":
			args = args[1:]
			break flags
		default:
			break flags
		}
	}
	if len(args) == 0 {
		_, _ = os.Stderr.WriteString("usage: skiff-init [--exit-file PATH] [--wait-size] [--exec] [--] command [args…]\n")
		os.Exit(2)
	}
	if waitForSize {
		waitSize(2 * time.Second)
	}
	if execIt {
		os.Exit(execCommand(args))
	}
	code := run(args)
	if exitFile != "" {
		writeExitFile(exitFile, code)
	}
	os.Exit(code)
}

// waitSize waits, up to d, until the terminal on standard input has a
// size; it returns at once without a terminal.
func waitSize(d time.Duration) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH) // a size change signals the terminal's foreground: us
	defer signal.Stop(winch)
	deadline := time.Now().Add(d)
	for {
		ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
		left := time.Until(deadline)
		if err != nil || ws.Row > 0 && ws.Col > 0 || left <= 0 {
			return
		}
		select {
		case <-winch:
		case <-time.After(min(left, 10*time.Millisecond)): // a signal may have come before Notify
		}
	}
}

// execCommand replaces skiff-init with the command; it returns only the
// exit status of a failure to.
func execCommand(args []string) int {
	path, err := exec.LookPath(args[0])
	if err == nil {
		err = unix.Exec(path, args, os.Environ()) //nolint:gosec // running the command is skiff-init's job, inside its sandbox
	}
	_, _ = os.Stderr.WriteString("skiff-init: " + err.Error() + "\n")
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, unix.ENOENT) {
		return 127
	}
	return 126
}

// writeExitFile records the exit status atomically; failing that, it says
// so and the daemon reports the status as unknown.
func writeExitFile(path string, code int) {
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, []byte(strconv.Itoa(code)+"\n"), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_, _ = os.Stderr.WriteString("skiff-init: record the exit status: " + err.Error() + "\n")
	}
}

func run(args []string) int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, append(append([]os.Signal{unix.SIGCHLD}, forwarded...), ignored...)...)
	if os.Getpid() != 1 {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) // without it orphans go to the real pid 1: still reaped
	}
	pid, err := start(args)
	if err != nil {
		_, _ = os.Stderr.WriteString("skiff-init: " + err.Error() + "\n")
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, unix.ENOENT) {
			return 127 // what a shell says for a command that is not there
		}
		return 126
	}
	for {
		// Every wake-up reaps: a SIGCHLD dropped while the channel was
		// full is made up for by the signal that filled it.
		if code, done := reap(pid); done {
			return code
		}
		sig := <-sigs
		switch sig {
		case unix.SIGCHLD, unix.SIGTTIN, unix.SIGTTOU, unix.SIGTSTP, unix.SIGPIPE:
		default:
			forward(pid, sig.(unix.Signal))
		}
	}
}

// start starts the app in a process group of its own, in the foreground of
// the controlling terminal if there is one.
func start(args []string) (int, error) {
	path, err := exec.LookPath(args[0])
	if err != nil {
		return 0, err
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil && pgrp == unix.Getpgrp() {
		// Standard input is our controlling terminal and we are its
		// foreground: hand that to the app.
		sys.Foreground, sys.Ctty = true, 0
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{ //nolint:gosec // running the app's command is skiff-init's job, inside its sandbox
		Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: sys,
	})
	if err != nil {
		return 0, &os.PathError{Op: "exec", Path: args[0], Err: err}
	}
	return pid, nil
}

// reap waits for every child that has ended, and reports the app's exit
// once it is among them.
func reap(app int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return code, done
		}
		if pid != app {
			continue
		}
		done = true
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = ws.ExitStatus()
		}
	}
}

// forward sends sig to the app's process group, or to the app alone when
// it has left that group.
func forward(app int, sig unix.Signal) {
	if err := unix.Kill(-app, sig); errors.Is(err, unix.ESRCH) {
		unix.Kill(app, sig)
	}
}
