package cnb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	defer out.Close()
	cmd := command(bc.Context, c)
	cmd.Stdout, cmd.Stderr = out, out
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
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	if !strings.Contains(c.Name, "/") {
		for _, dir := range strings.Split(c.Env.Get("PATH"), ":") {
			if p := dir + "/" + c.Name; dir != "" && isExec(p) {
				cmd.Path, cmd.Err = p, nil
				break
			}
		}
	}
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

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
