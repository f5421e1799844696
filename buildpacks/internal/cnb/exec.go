package cnb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cmd describes an external command a buildpack runs.
type Cmd struct {
	Name string
	Args []string
	Dir  string
	Env  Env // the complete environment; nil is an empty one
}

// Run runs the command with its output indented into the build log. A
// command that fails returns an *exec.ExitError wrapped with its name.
func (bc *BuildContext) Run(c Cmd) error {
	out := bc.Log.Indented()
	defer func() { _ = out.Close() }() // the build's output: nothing to report it to
	cmd := command(bc.Context, c)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", c.String(), err)
	}
	return nil
}

// RunTee is Run with the output also written to tee, for a failure
// message that says what failed.
func (bc *BuildContext) RunTee(c Cmd, tee io.Writer) error {
	out := bc.Log.Indented()
	defer func() { _ = out.Close() }() // the build's output: nothing to report it to
	cmd := command(bc.Context, c)
	w := io.MultiWriter(out, tee)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", c.String(), err)
	}
	return nil
}

// RunTo runs the command with its standard output written to stdout and
// its standard error indented into the build log (go list's downloads,
// progress).
func (bc *BuildContext) RunTo(stdout io.Writer, c Cmd) error {
	out := bc.Log.Indented()
	defer func() { _ = out.Close() }() // the build's output: nothing to report it to
	cmd := command(bc.Context, c)
	cmd.Stdout, cmd.Stderr = stdout, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", c.String(), err)
	}
	return nil
}

// Output runs the command and returns its standard output; standard error
// is kept for the error message.
func (bc *BuildContext) Output(c Cmd) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := command(bc.Context, c)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", c.String(), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func command(ctx context.Context, c Cmd) *exec.Cmd {
	// exec.Command would look the name up in this process's PATH; the
	// command's own environment decides which node or go runs.
	cmd := exec.CommandContext(ctx, lookPath(c.Name, c.Env.Get("PATH")), c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = []string(c.Env)
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	// On cancellation ask politely, then kill: npm and go clean up their
	// temporary files on SIGTERM.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// String renders the command for messages.
func (c Cmd) String() string {
	return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " "))
}

// ExitCode returns the exit status of a failed command, or -1.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// lookPath finds an executable in the directories of path; a name with a
// slash, or one not found, is returned as it is (and fails when run).
func lookPath(name, path string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return name
}
