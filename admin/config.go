package admin

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

func configShow(c *call) error {
	vars, err := c.services().Config.Config(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(vars)
	}
	if len(vars) == 0 {
		fmt.Fprintf(c.stderr(), "%s has no config vars.\n", c.app.Name)
		return nil
	}
	c.section(c.app.Name + " Config Vars")
	keys := slices.Sorted(maps.Keys(vars))
	width := 0
	for _, k := range keys {
		width = max(width, len(k))
	}
	for _, k := range keys {
		// Multi-line values stay readable and unambiguous: continuation
		// lines are indented under the value.
		v := strings.ReplaceAll(vars[k], "\n", "\n"+strings.Repeat(" ", width+2))
		fmt.Fprintf(c.stdout(), "%-*s %s\n", width+1, k+":", v)
	}
	return nil
}

// configGet prints one value followed by exactly one newline (as Heroku and
// Dokku do), so the value is the output minus its last byte, whatever it
// holds; --format json gives it quoted.
func configGet(c *call) error {
	key := c.args[0]
	vars, err := c.services().Config.Config(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	v, ok := vars[key]
	if !ok {
		return skiff.Errorf(skiff.ENOTFOUND, "%s has no config var %s", c.app.Name, quoteArg(key))
	}
	if c.json() {
		return c.writeJSON(map[string]string{key: v})
	}
	_, err = fmt.Fprintf(c.stdout(), "%s\n", v)
	return err
}

func configSet(c *call) error {
	ch := &skiff.ConfigChange{Set: map[string]string{}, Build: c.flag("build")}
	for _, a := range c.args {
		k, v, err := skiff.ParseConfigAssignment(a)
		if err != nil {
			return err
		}
		ch.Set[k] = v
	}
	return c.changeConfig(ch, "Setting "+strings.Join(ch.Keys(), ", "))
}

func configUnset(c *call) error {
	ch := &skiff.ConfigChange{}
	for _, k := range c.args {
		if err := skiff.ValidateConfigKey(k); err != nil {
			return err
		}
		ch.Unset = append(ch.Unset, k)
	}
	return c.changeConfig(ch, "Unsetting "+strings.Join(ch.Keys(), ", "))
}

func (c *call) changeConfig(ch *skiff.ConfigChange, what string) error {
	restart := !c.flag("no-restart")
	c.progress("%s and restarting %s", what, c.app.Name)
	if err := c.services().Deployer.SetConfig(c.ctx, c.app, ch, restart, c.stderr()); err != nil {
		return err
	}
	if cur, err := c.services().Releases.CurrentRelease(c.ctx, c.app.ID); err == nil && restart {
		fmt.Fprintf(c.stderr(), "       done, v%d\n", cur.Version)
	} else {
		fmt.Fprintln(c.stderr(), "       done; the next deploy uses it")
	}
	return nil
}
