package admin

import (
	"strings"

	"github.com/skiffhq/skiff"
)

// exitError carries a one-off process's exit code out of a command.
type exitError struct{ code int }

func (e *exitError) Error() string { return "exit" }

func run(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	req := &skiff.RunRequest{Args: []string{c.commandRest()}, Stdin: c.inv.Stdin, Stdout: c.raw.Stdout, Stderr: c.raw.Stderr, TTY: c.inv.TTY}
	code, err := c.services().Deployer.Run(c.ctx, c.app, req)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// commandRest is the command to run, for the app's shell: over SSH the rest
// of the line exactly as typed (so `run app 'grep -E "a|b" f'` keeps its
// quotes), locally the words the local shell already split, joined.
func (c *call) commandRest() string {
	inv := c.inv
	if inv.Raw != "" && len(inv.RawStarts) == len(inv.Args) && len(c.args) > 0 {
		return inv.Raw[inv.RawStarts[len(inv.Args)-len(c.args)]:]
	}
	return strings.Join(c.args, " ")
}
