package admin

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// needScheduler fails when the server runs no apps.
func (c *call) needScheduler() error {
	if c.services().Scheduler == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not run apps")
	}
	return nil
}

func psList(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	ins, err := c.services().Scheduler.Instances(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	if len(c.args) == 1 {
		ins = slices.DeleteFunc(ins, func(in *skiff.Instance) bool { return in.Spec.ProcessType != c.args[0] })
	}
	slices.SortFunc(ins, func(a, b *skiff.Instance) int {
		if a.Spec.ProcessType != b.Spec.ProcessType {
			return strings.Compare(a.Spec.ProcessType, b.Spec.ProcessType)
		}
		return a.Spec.Index - b.Spec.Index
	})
	if c.json() {
		return c.writeJSON(ins)
	}
	if len(ins) == 0 {
		fmt.Fprintf(c.stderr(), "No instances of %s are running.\n", c.app.Name)
		return nil
	}
	cur, _ := c.services().Releases.CurrentRelease(c.ctx, c.app.ID)
	lastType, noUsage := "", ""
	for _, in := range ins {
		t := in.Spec.ProcessType
		if t != lastType {
			cmd := ""
			if cur != nil {
				cmd = cur.ProcessTypes[t]
			}
			if in.Spec.OneOff {
				cmd = "one-off: " + strings.Join(in.Spec.Command, " ")
			}
			if lastType != "" {
				fmt.Fprintln(c.stdout())
			}
			c.section(fmt.Sprintf("%s (%s): %s", t, limitsText(in.Spec.Limits), cmd))
			lastType = t
		}
		state := string(in.State)
		switch in.State {
		case skiff.InstanceUp:
			state = "up for " + since(in.StartedAt)
		case skiff.InstanceCrashed:
			state = "crashed " + since(in.LastExitAt) + " ago"
		case skiff.InstanceExited:
			state = fmt.Sprintf("exited with status %d %s ago", in.ExitCode, since(in.LastExitAt))
		}
		cpu, mem := in.CPU.Round(time.Millisecond).String(), bytesText(in.MemoryBytes)
		switch {
		case in.NoUsage != "":
			cpu, mem = "?", "?"
			if noUsage == "" {
				noUsage = in.NoUsage
			}
		case in.CPU == 0 && in.CPUCores > 0:
			cpu = fmt.Sprintf("%.3g cores now", in.CPUCores)
		}
		line := fmt.Sprintf("%s: %s  v%d  cpu %s  mem %s/%s  restarts %d", in.Spec.Name(), state, in.Spec.Release,
			cpu, mem, bytesText(in.MemoryLimit), in.Restarts)
		if in.LastExit != "" {
			line += "  last exit: " + in.LastExit
		}
		if in.Node != "" {
			line += "  node " + in.Node
		}
		fmt.Fprintln(c.stdout(), line)
	}
	if noUsage != "" {
		fmt.Fprintf(c.stderr(), "No CPU or memory figures (?): %s.\n", noUsage)
	}
	return nil
}

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d > time.Hour {
		d = d.Round(time.Minute)
	}
	return d.String()
}

func bytesText(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0fM", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0fK", float64(n)/(1<<10))
	}
}

func limitsText(l skiff.Limits) string {
	return fmt.Sprintf("%s, %g cpu, %d pids", bytesText(l.MemoryBytes), l.CPU, l.Pids)
}

func psScale(c *call) error {
	if len(c.args) == 0 {
		return formationReport(c)
	}
	quantities := map[string]int{}
	for _, a := range c.args {
		t, n, ok := strings.Cut(a, "=")
		if !ok {
			return &usageError{cmd: c.cmd, msg: fmt.Sprintf("%s is not TYPE=N (like web=2)", quoteArg(a))}
		}
		if err := skiff.ValidateProcessType(t); err != nil {
			return err
		}
		q, err := strconv.Atoi(n)
		if err != nil || q < 0 || q > skiff.MaxScale {
			return skiff.Errorf(skiff.EINVALID, "invalid quantity %s for %s: use 0 to %d", quoteArg(n), t, skiff.MaxScale)
		}
		quantities[t] = q
	}
	// Refuse a type the app does not have before saying anything is being
	// scaled (the deployer checks again, under the app's lock).
	_, cur, err := effectiveFormation(c)
	if err != nil {
		return err
	}
	for _, t := range sortedKeys(quantities) {
		if err := skiff.CheckScalable(c.app, cur, t); err != nil {
			return err
		}
	}
	c.progress("Scaling %s processes", c.app.Name)
	if err := c.services().Deployer.Scale(c.ctx, c.app, quantities, c.stderr()); err != nil {
		return err
	}
	return formationReport(c)
}

// formationReport prints the formation, Heroku's "web=2 worker=1" style.
func formationReport(c *call) error {
	f, _, err := effectiveFormation(c)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(f)
	}
	var parts []string
	for _, t := range sortedKeys(f) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, f[t].Quantity))
	}
	if len(parts) == 0 {
		fmt.Fprintf(c.stderr(), "%s has no process types yet; push to deploy.\n", c.app.Name)
		return nil
	}
	fmt.Fprintln(c.stdout(), strings.Join(parts, " "))
	return nil
}

// processTypeArg returns the optional process type argument.
func (c *call) processTypeArg() (string, error) {
	if len(c.args) == 0 {
		return "", nil
	}
	return c.args[0], skiff.ValidateProcessType(c.args[0])
}

func psAction(verb string) func(*call) error {
	return func(c *call) error {
		t, err := c.processTypeArg()
		if err != nil {
			return err
		}
		d := c.services().Deployer
		what := c.app.Name
		if t != "" {
			what += " " + t
		}
		switch verb {
		case "restart":
			c.progress("Restarting %s", what)
			err = d.Restart(c.ctx, c.app, t, c.stderr())
		case "stop":
			c.progress("Stopping %s", what)
			err = d.Stop(c.ctx, c.app, t, c.stderr())
		case "start":
			c.progress("Starting %s", what)
			err = d.Start(c.ctx, c.app, t, c.stderr())
		}
		return err
	}
}

// parseBytes reads sizes like 512m, 1g, 1024k, 1048576.
func parseBytes(s string) (int64, error) { return skiff.ParseSize(s) }

func resourceLimit(c *call) error {
	t := c.value("process-type")
	if t == "" {
		t = "web"
	}
	if err := skiff.ValidateProcessType(t); err != nil {
		return err
	}
	f, err := c.services().Releases.Formation(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	l := f[t].Limits
	if l == (skiff.Limits{}) {
		l = skiff.DefaultLimits
	}
	if v := c.value("memory"); v != "" {
		if l.MemoryBytes, err = parseBytes(v); err != nil {
			return err
		}
		if l.MemoryBytes < 16<<20 {
			return skiff.Errorf(skiff.EINVALID, "--memory %s is too small to start a process; use at least 16m", v)
		}
	}
	if v := c.value("cpu"); v != "" {
		if l.CPU, err = strconv.ParseFloat(v, 64); err != nil || l.CPU <= 0 || l.CPU > 64 {
			return skiff.Errorf(skiff.EINVALID, "invalid --cpu %s: use a number of cores like 0.5 or 2", quoteArg(v))
		}
	}
	if v := c.value("pids"); v != "" {
		if l.Pids, err = strconv.ParseInt(v, 10, 64); err != nil || l.Pids < 8 || l.Pids > 1<<20 {
			return skiff.Errorf(skiff.EINVALID, "invalid --pids %s: use a number from 8 up", quoteArg(v))
		}
	}
	c.progress("Setting %s limits of %s to %s", t, c.app.Name, limitsText(l))
	return c.services().Deployer.SetLimits(c.ctx, c.app, t, l, c.stderr())
}

func resourceReport(c *call) error {
	f, err := c.services().Releases.Formation(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	types := map[string]skiff.Limits{"web": skiff.DefaultLimits}
	if cur, err := c.services().Releases.CurrentRelease(c.ctx, c.app.ID); err == nil {
		for t := range cur.ProcessTypes {
			types[t] = skiff.DefaultLimits
		}
	}
	for t, s := range f {
		if s.Limits != (skiff.Limits{}) {
			types[t] = s.Limits
		} else if _, ok := types[t]; !ok {
			types[t] = skiff.DefaultLimits
		}
	}
	if c.json() {
		return c.writeJSON(types)
	}
	c.section(c.app.Name + " resource limits")
	rows := [][]string{}
	for _, t := range sortedKeys(types) {
		l := types[t]
		rows = append(rows, []string{t, bytesText(l.MemoryBytes), fmt.Sprintf("%g", l.CPU), strconv.FormatInt(l.Pids, 10)})
	}
	c.table([]string{"TYPE", "MEMORY", "CPU", "PIDS"}, rows)
	return nil
}

// effectiveFormation is the app's scale as it runs: the formation table,
// plus the current release's process types that were never scaled (web at
// 1, others at 0). The release is nil before the first deploy.
func effectiveFormation(c *call) (skiff.Formation, *skiff.Release, error) {
	f, err := c.services().Releases.Formation(c.ctx, c.app.ID)
	if err != nil {
		return nil, nil, err
	}
	if f == nil {
		f = skiff.Formation{}
	}
	cur, err := c.services().Releases.CurrentRelease(c.ctx, c.app.ID)
	if err != nil {
		if skiff.ErrorCode(err) == skiff.ENOTFOUND {
			return f, nil, nil
		}
		return nil, nil, err
	}
	for _, t := range cur.ScalableTypes() {
		if _, ok := f[t]; !ok {
			s := skiff.Scale{}
			if t == "web" {
				s.Quantity = 1
			}
			f[t] = s
		}
	}
	return f, cur, nil
}
