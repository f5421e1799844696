package admin

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

func (c *call) needBuilder() error {
	if c.services().Builder == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not build apps")
	}
	return nil
}

func buildsList(c *call) error {
	builds, err := c.services().Releases.ListBuilds(c.ctx, c.app.ID, 50)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(builds)
	}
	if len(builds) == 0 {
		fmt.Fprintf(c.stderr(), "%s has no builds yet; push to build.\n", c.app.Name)
		return nil
	}
	rows := make([][]string, len(builds))
	for i, b := range builds {
		dur := "-"
		if !b.FinishedAt.IsZero() {
			dur = b.FinishedAt.Sub(b.StartedAt).Round(100 * time.Millisecond).String()
		}
		rows[i] = []string{strconv.Itoa(b.ID), string(b.Status), skiff.ShortID(b.Commit), b.Actor, formatTime(b.StartedAt), dur}
	}
	c.table([]string{"ID", "STATUS", "COMMIT", "BY", "STARTED", "TOOK"}, rows)
	return nil
}

func (c *call) buildArg(i int) (*skiff.Build, error) {
	if len(c.args) <= i || c.args[i] == "current" || c.args[i] == "latest" {
		builds, err := c.services().Releases.ListBuilds(c.ctx, c.app.ID, 1)
		if err != nil {
			return nil, err
		}
		if len(builds) == 0 {
			return nil, skiff.Errorf(skiff.ENOTFOUND, "%s has no builds yet", c.app.Name)
		}
		return builds[0], nil
	}
	id, err := strconv.Atoi(c.args[i])
	if err != nil || id < 1 {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid build id %s: use a number from builds:list", quoteArg(c.args[i]))
	}
	return c.services().Releases.FindBuild(c.ctx, c.app.ID, id)
}

func buildsInfo(c *call) error {
	b, err := c.buildArg(0)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(b)
	}
	c.section(fmt.Sprintf("Build %d of %s", b.ID, c.app.Name))
	c.fields("Status", string(b.Status), "Commit", b.Commit, "By", b.Actor, "Started", formatTime(b.StartedAt),
		"Finished", formatTime(b.FinishedAt), "Phases", b.Phases.String(), "Builder", orNone(b.Builder),
		"Buildpacks", orNone(strings.Join(b.Buildpacks, ", ")), "Image", orNone(b.Image), "Error", orNone(b.Error))
	return nil
}

func buildsOutput(c *call) error {
	if err := c.needBuilder(); err != nil {
		return err
	}
	b, err := c.buildArg(0)
	if err != nil {
		return err
	}
	rc, err := c.services().Builder.BuildLog(c.app.ID, b.Key())
	if err != nil {
		return skiff.Errorf(skiff.ENOTFOUND, "the output of build %d is no longer kept", b.ID)
	}
	defer rc.Close()
	_, err = io.Copy(c.stdout(), rc)
	return err
}

func buildsCancel(c *call) error {
	if err := c.needBuilder(); err != nil {
		return err
	}
	if !c.services().Builder.Cancel(c.app.ID) {
		return skiff.Errorf(skiff.ENOTFOUND, "%s has no build running", c.app.Name)
	}
	c.progress("Canceling the build of %s... done", c.app.Name)
	return nil
}

func buildsPurgeCache(c *call) error {
	if err := c.needBuilder(); err != nil {
		return err
	}
	if err := c.services().Builder.PurgeCache(c.ctx, c.app.ID); err != nil {
		return err
	}
	c.progress("Purging the build cache of %s... done; the next build starts cold", c.app.Name)
	return nil
}

func (c *call) buildpacks() ([]string, error) {
	s, err := c.settings()
	if err != nil {
		return nil, err
	}
	return s.Buildpacks, nil
}

// validBuildpack accepts buildpack ids ("skiff/nodejs", "heroku/go@1.2.3")
// and image references, and nothing that could be read as an option.
func validBuildpack(s string) error {
	if s == "" || len(s) > 255 || strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\n\r\x00\"'`$;|&<>") {
		return skiff.Errorf(skiff.EINVALID, "invalid buildpack %s: use an id like skiff/nodejs (optionally @version) or an image reference", quoteArg(s))
	}
	return nil
}

func buildpacksList(c *call) error {
	bps, err := c.buildpacks()
	if err != nil {
		return err
	}
	if c.json() {
		if bps == nil {
			bps = []string{}
		}
		return c.writeJSON(bps)
	}
	if len(bps) == 0 {
		fmt.Fprintf(c.stderr(), "%s uses the builder's detection (or project.toml); pin buildpacks with buildpacks:set.\n", c.app.Name)
		return nil
	}
	c.section(c.app.Name + " Buildpacks")
	for i, bp := range bps {
		fmt.Fprintf(c.stdout(), "%d. %s\n", i+1, bp)
	}
	return nil
}

func buildpacksChange(c *call) error {
	verb := strings.TrimPrefix(c.cmd.name, "buildpacks:")
	if verb != "clear" {
		if err := validBuildpack(c.args[0]); err != nil {
			return err
		}
	}
	index := 0 // the end
	if v := c.value("index"); v != "" {
		var err error
		if index, err = strconv.Atoi(v); err != nil || index < 1 {
			return &usageError{cmd: c.cmd, msg: "--index takes a position from 1"}
		}
	}
	s, err := c.updateSettings(func(s *skiff.Settings) error {
		bps := slices.Clone(s.Buildpacks)
		at := index
		if at == 0 {
			at = len(bps) + 1
		}
		switch verb {
		case "set":
			if index == 0 {
				bps = []string{c.args[0]}
			} else if at <= len(bps) {
				bps[at-1] = c.args[0]
			} else {
				bps = append(bps, c.args[0])
			}
		case "add":
			if slices.Contains(bps, c.args[0]) {
				return skiff.Errorf(skiff.ECONFLICT, "%s already uses %s", c.app.Name, c.args[0])
			}
			bps = slices.Insert(bps, min(at-1, len(bps)), c.args[0])
		case "remove":
			i := slices.Index(bps, c.args[0])
			if i < 0 {
				return skiff.Errorf(skiff.ENOTFOUND, "%s does not use %s", c.app.Name, c.args[0])
			}
			bps = slices.Delete(bps, i, i+1)
		case "clear":
			bps = nil
		}
		// A pin the builder cannot honour is refused now, not at the next push.
		if (verb == "set" || verb == "add") && c.services().Builders != nil {
			if err := c.services().Builders.CheckBuildpacks(c.ctx, s.Builder, []string{c.args[0]}); err != nil {
				return err
			}
		}
		s.Buildpacks = bps
		return nil
	})
	if err != nil {
		return err
	}
	c.progress("Buildpacks of %s: %s; they apply from the next push", c.app.Name, orNone(strings.Join(s.Buildpacks, ", ")))
	return nil
}

// builderSet picks the app's builder. Pulling an image from a registry is
// for admins: the pull is the daemon's own work, as root on the host's
// network, and its gigabytes land in the server's shared image store with
// no quota per user. Anyone with access to the app may pick a builder the
// server already has.
func builderSet(c *call) error {
	ref := c.args[0]
	if ref == "default" || ref == "" {
		ref = ""
	} else {
		if err := validBuildpack(ref); err != nil {
			return skiff.Errorf(skiff.EINVALID, "invalid builder image %s", quoteArg(ref))
		}
		if c.services().Builders == nil {
			return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not build apps")
		}
		var err error
		if c.actor.Admin() {
			if ref, err = c.services().Builders.Pull(c.ctx, ref, c.stderr()); err != nil {
				return err
			}
		} else if stored, ok := c.services().Builders.Stored(c.ctx, ref); ok {
			ref = stored
		} else {
			return skiff.Errorf(skiff.EUNAUTHORIZED, "builder %s is not on this server, and pulling one from a registry is for admins: "+
				"ask one to run builder:set %s %s (after that anyone can pick it)", quoteArg(ref), c.app.Name, quoteArg(ref))
		}
	}
	if _, err := c.updateSettings(func(s *skiff.Settings) error {
		s.Builder = ref
		return nil
	}); err != nil {
		return err
	}
	c.progress("Builder of %s: %s; it applies from the next push", c.app.Name, orNone(map[bool]string{true: "the default builder", false: ref}[ref == ""]))
	return nil
}

func builderCreate(c *call) error {
	if c.services().Builders == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not build apps")
	}
	if c.flag("if-missing") && c.services().Builders.HasDefault() {
		c.progress("Using the default builder (it is up to date; builder:create remakes it)")
		return nil
	}
	return c.services().Builders.CreateDefault(c.ctx, c.stderr())
}
