package admin

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff"
)

// parseVersion reads "v12" or "12".
func parseVersion(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	if err != nil || n < 1 {
		return 0, skiff.Errorf(skiff.EINVALID, "invalid release %s: use a version like v12", quoteArg(s))
	}
	return n, nil
}

func releasesList(c *call) error {
	rels, err := c.services().Releases.ListReleases(c.ctx, c.app.ID, 50)
	if err != nil {
		return err
	}
	if c.json() {
		for _, r := range rels {
			r.Config = nil // values are secrets; releases:info shows keys
		}
		return c.writeJSON(rels)
	}
	if len(rels) == 0 {
		fmt.Fprintf(c.stderr(), "%s has no releases yet; push to deploy.\n", c.app.Name)
		return nil
	}
	c.section(c.app.Name + " Releases")
	rows := make([][]string, len(rels))
	for i, r := range rels {
		status := string(r.Status)
		if r.Current {
			status = "current"
		}
		rows[i] = []string{fmt.Sprintf("v%d", r.Version), r.Description, r.Actor, formatTime(r.CreatedAt), status}
	}
	c.table(nil, rows)
	return nil
}

func releasesInfo(c *call) error {
	var rel *skiff.Release
	var err error
	if len(c.args) == 0 {
		rel, err = c.services().Releases.CurrentRelease(c.ctx, c.app.ID)
	} else {
		var v int
		if v, err = parseVersion(c.args[0]); err != nil {
			return err
		}
		rel, err = c.services().Releases.FindRelease(c.ctx, c.app.ID, v)
	}
	if err != nil {
		return err
	}
	keys := sortedKeys(rel.Config)
	if c.json() {
		out := *rel
		out.Config = nil
		return c.writeJSON(struct {
			skiff.Release
			ConfigKeys []string `json:"config_keys"`
		}{out, keys})
	}
	c.section(fmt.Sprintf("Release v%d of %s", rel.Version, c.app.Name))
	status := string(rel.Status)
	if rel.Current {
		status += " (current)"
	}
	types := make([]string, 0, len(rel.ProcessTypes))
	for _, t := range sortedKeys(rel.ProcessTypes) {
		types = append(types, t+": "+rel.ProcessTypes[t])
	}
	c.fields("Description", rel.Description, "By", rel.Actor, "When", formatTime(rel.CreatedAt), "Status", status,
		"Error", orNone(rel.Error), "Commit", orNone(skiff.ShortID(rel.Commit)), "Build", orNone(itoa0(rel.BuildID)),
		"Image", rel.Image, "Config vars", orNone(strings.Join(keys, ", ")), "Processes", orNone(strings.Join(types, "; ")),
		"Formation", orNone(formationText(rel.Formation)))
	return nil
}

func itoa0(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func releasesRollback(c *call) error {
	v := 0
	if len(c.args) == 1 {
		var err error
		if v, err = parseVersion(c.args[0]); err != nil {
			return err
		}
	}
	c.progress("Rolling back %s", c.app.Name)
	if err := c.services().Deployer.Rollback(c.ctx, c.app, v, c.stderr()); err != nil {
		return err
	}
	return nil
}

func formationText(f skiff.Formation) string {
	var parts []string
	for _, t := range sortedKeys(f) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, f[t].Quantity))
	}
	return strings.Join(parts, " ")
}

// releasesOutput prints what a release's release phase and postdeploy
// scripts printed (default: the current release).
func releasesOutput(c *call) error {
	var version int
	if len(c.args) == 1 {
		v, err := parseVersion(c.args[0])
		if err != nil {
			return err
		}
		version = v
	} else {
		// The newest release, as on Heroku: after a rejected push, the
		// failed release whose command said why.
		rels, err := c.services().Releases.ListReleases(c.ctx, c.app.ID, 1)
		if err != nil {
			return err
		}
		if len(rels) == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "%s has no releases yet; push first", c.app.Name)
		}
		version = rels[0].Version
	}
	rel, err := c.services().Releases.FindRelease(c.ctx, c.app.ID, version)
	if err != nil {
		return err
	}
	out, err := c.services().Releases.ReleaseOutput(c.ctx, c.app.ID, version)
	if err != nil {
		return err
	}
	if len(out) == 0 {
		if len(rel.ReleasePhase()) == 0 && rel.Scripts.Postdeploy == "" {
			fmt.Fprintf(c.stderr(), "v%d has no release command (a Procfile `release:` line or app.json scripts.dokku.predeploy).\n", version)
		} else {
			fmt.Fprintf(c.stderr(), "v%d's release command printed nothing, or did not run.\n", version)
		}
		return nil
	}
	(&sanitizer{w: c.stdout()}).Write(out)
	return nil
}
