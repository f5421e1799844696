package admin

import (
	"fmt"
	"io"
	"strings"

	"github.com/skiffhq/skiff"
)

// Detached runs (Dokku's run:detached and friends).

func runDetached(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	in, err := c.services().Deployer.RunDetached(c.ctx, c.app, c.commandRest())
	if err != nil {
		return err
	}
	c.progress("Running %s of %s, detached: run:logs %s %s -t follows it", in.Spec.Name(), c.app.Name, c.app.Name, in.Spec.Name())
	fmt.Fprintln(c.stdout(), in.Spec.Name())
	return nil
}

func runList(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	runs, err := c.services().Deployer.DetachedRuns(c.ctx, c.app)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(runs)
	}
	if len(runs) == 0 {
		fmt.Fprintf(c.stderr(), "%s has no detached runs.\n", c.app.Name)
		return nil
	}
	c.section(c.app.Name + " detached runs")
	rows := make([][]string, len(runs))
	for i, in := range runs {
		state := "running for " + since(in.StartedAt)
		if in.State == skiff.InstanceExited {
			state = fmt.Sprintf("exited with status %d %s ago", in.ExitCode, since(in.LastExitAt))
		}
		rows[i] = []string{in.Spec.Name(), oneLineText(strings.Join(in.Spec.Command, " ")), fmt.Sprintf("v%d", in.Spec.Release), formatTime(in.CreatedAt), state}
	}
	c.table([]string{"NAME", "COMMAND", "RELEASE", "STARTED", "STATE"}, rows)
	return nil
}

// runLogs prints a detached run's output; with -t it follows it until the
// run ends, and exits with the run's status.
func runLogs(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	in, err := c.services().Deployer.DetachedRun(c.ctx, c.app, c.args[0])
	if err != nil {
		return err
	}
	w := &sanitizer{w: c.stdout()}
	if c.flag("tail") {
		code, err := skiff.FollowOneOff(c.ctx, c.services().Scheduler, c.app.ID, in.ID, w, 0)
		if c.ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if code != 0 {
			return &exitError{code: max(code, 1)}
		}
		return nil
	}
	return c.services().Scheduler.Logs(c.ctx, skiff.LogQuery{AppID: c.app.ID, Process: in.Spec.Name(), Since: in.CreatedAt, Lines: 10000},
		func(l skiff.LogLine) error {
			if l.Source != "app" {
				return nil
			}
			_, err := io.WriteString(w, l.Text+"\n")
			return err
		})
}

func runStop(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	c.progress("Stopping %s of %s", c.args[0], c.app.Name)
	return c.services().Deployer.StopRun(c.ctx, c.app, c.args[0])
}

// sanitizer drops terminal control sequences from an app's output on its
// way to a user's terminal, keeping newlines and tabs.
type sanitizer struct{ w io.Writer }

func (s *sanitizer) Write(p []byte) (int, error) {
	clean := []byte(strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, string(p)))
	if _, err := s.w.Write(clean); err != nil {
		return 0, err
	}
	return len(p), nil
}
