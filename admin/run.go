package admin

import (
	"github.com/skiffhq/skiff"
)

// exitError carries a one-off process's exit code out of a command.
type exitError struct{ code int }

func (e *exitError) Error() string { return "exit" }

func run(c *call) error {
	if err := c.needRuntime(); err != nil {
		return err
	}
	req := &skiff.RunRequest{Args: c.args, Stdin: c.inv.Stdin, Stdout: c.stdout(), Stderr: c.stderr(), TTY: c.inv.TTY}
	code, err := c.services().Deployer.Run(c.ctx, c.app, req)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}
