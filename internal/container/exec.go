package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Exec is a process to run inside a running container: in its namespaces
// and cgroup, under its seccomp profile, with no capabilities and
// no_new_privs, like the container's own process.
type Exec struct {
	Args     []string
	Env      []string // KEY=VALUE; written to a 0600 file, never on a command line
	Cwd      string   // default "/"
	UID, GID uint32
	Terminal bool
	// Stdio are the process's streams without Terminal (nil: /dev/null).
	Stdio Stdio
	// Cols and Rows, with Terminal, are the terminal's size from the
	// start. runc 1.1 passes it to the container's terminal only once the
	// process runs, so in a container with an Init the command waits for
	// it (skiff-init --wait-size, 2 s at most): a quick program would read
	// 0×0. Zero: a terminal of no size, and no wait.
	Cols, Rows int
	// Console receives the terminal's master with Terminal, once the
	// process runs; the caller copies through it, resizes it with
	// SetWinsize, and closes it after Exec returns.
	Console func(*os.File)
}

// Exec runs e in the container and returns its exit code (128+n for a
// process killed by signal n). When ctx ends the process is killed.
func (c *Container) Exec(ctx context.Context, e *Exec) (int, error) {
	if len(e.Args) == 0 {
		return 0, errors.New("exec: no command")
	}
	cwd := e.Cwd
	if cwd == "" {
		cwd = "/"
	}
	sized := e.Terminal && e.Cols > 0 && e.Rows > 0
	argv := e.Args
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", c.Pid, InitPath)); sized && err == nil {
		argv = append([]string{InitPath, "--wait-size", "--exec", "--"}, e.Args...)
	}
	proc := specs.Process{
		Terminal: e.Terminal, User: specs.User{UID: e.UID, GID: e.GID},
		Args: argv, Env: e.Env, Cwd: cwd, NoNewPrivileges: true,
		Capabilities: &specs.LinuxCapabilities{},
	}
	dir, err := os.MkdirTemp("", "skiff-exec-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	b, err := json.Marshal(proc)
	if err != nil {
		return 0, err
	}
	procFile, pidFile := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid")
	if err := os.WriteFile(procFile, b, 0o600); err != nil {
		return 0, err
	}
	args := []string{"--root", c.r.cfg.StateDir, "exec", "--process", procFile, "--pid-file", pidFile, c.ID}
	cmd := exec.Command(c.r.cfg.Runc, args...)
	cmd.Env = runcEnv
	var master *os.File
	if e.Terminal {
		// runc 1.1 takes a console socket only when it detaches, and a
		// detached process's exit code is lost to whoever reaps it. So
		// runc stays in front, on a terminal of ours: it relays between
		// it and the container's, and resizes that one on SIGWINCH (which
		// a resize of ours sends it, the terminal being its controlling
		// one).
		m, slave, err := openPTY()
		if err != nil {
			return 0, err
		}
		defer slave.Close()
		master = m
		if sized { // before runc starts: it copies this size to the container's terminal
			if err := setWinsize(m, e.Cols, e.Rows); err != nil {
				m.Close()
				return 0, err
			}
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		if e.Stdio.Stdin != nil {
			cmd.Stdin = e.Stdio.Stdin
		}
		if e.Stdio.Stdout != nil {
			cmd.Stdout = e.Stdio.Stdout
		}
		if e.Stdio.Stderr != nil {
			cmd.Stderr = e.Stdio.Stderr
		}
	}
	if err := cmd.Start(); err != nil {
		if master != nil {
			master.Close()
		}
		return 0, fmt.Errorf("runc exec: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if master != nil {
		e.Console(master)
	}
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		killExec(pidFile, cmd)
		select {
		case werr = <-waited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			werr = <-waited
		}
	}
	var exit *exec.ExitError
	switch {
	case werr == nil:
		return 0, nil
	case errors.As(werr, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	return 0, fmt.Errorf("runc exec: %w", werr)
}

// killExec kills the exec'd process (which is not runc's child once it
// runs in the container), then runc itself.
func killExec(pidFile string, cmd *exec.Cmd) {
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		m.Close()
		return nil, nil, fmt.Errorf("open pty peer: %w", errno)
	}
	return m, os.NewFile(fd, "pty-slave"), nil
}

// SetWinsize sets the size of a terminal Exec (or Create) handed out.
func SetWinsize(master *os.File, cols, rows int) error { return setWinsize(master, cols, rows) }

// Process is the container's own process as its bundle's config.json has
// it (user, environment, working directory): what an Exec that should run
// like the container's process starts from.
func (c *Container) Process() (*specs.Process, error) {
	b, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var sp specs.Spec
	if err := json.Unmarshal(b, &sp); err != nil || sp.Process == nil {
		return nil, fmt.Errorf("config.json of %s: %v", c.ID, err)
	}
	return sp.Process, nil
}
