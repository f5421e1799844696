package deploy

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// SetConfig changes config vars. Once the app has a release, the change
// makes a new release (unless restart is false, Dokku's --no-restart: then
// the next release picks it up) that rolls out like a deploy; the config
// changes only if the rollout succeeds.
func (p *Pipeline) SetConfig(ctx context.Context, app *skiff.App, ch *skiff.ConfigChange, restart bool, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "config change")
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND || (err == nil && !restart) {
		return p.cfg.Store.UpdateConfig(ctx, app.ID, ch)
	} else if err != nil {
		return err
	}
	vars, err := p.cfg.Store.Config(ctx, app.ID)
	if err != nil {
		return err
	}
	next := ch.Apply(vars)
	if err := skiff.ValidateConfig(next); err != nil {
		return err
	}
	verb := "Set"
	if len(ch.Set) == 0 {
		verb = "Unset"
	}
	mounts, err := p.cfg.Store.Mounts(ctx, app.ID)
	if err != nil {
		return err
	}
	desc := ch.Description
	if desc == "" {
		desc = fmt.Sprintf("%s %s config vars", verb, strings.Join(ch.Keys(), ", "))
	}
	rel := &skiff.Release{AppID: app.ID, Image: cur.Image, Config: next, ProcessTypes: cur.ProcessTypes,
		Scripts: cur.Scripts, Cron: cur.Cron, Mounts: mounts,
		BuildID: cur.BuildID, Commit: cur.Commit, Description: desc}
	return p.release(ctx, app, rel, ch, out)
}

// Rollback releases version's image and config again as a new release, as
// Heroku does; version 0 means the deployed release before the current one.
func (p *Pipeline) Rollback(ctx context.Context, app *skiff.App, version int, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "rollback")
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if err != nil {
		return err
	}
	var target *skiff.Release
	if version == 0 {
		rels, err := p.cfg.Store.ListReleases(ctx, app.ID, 1000)
		if err != nil {
			return err
		}
		for _, r := range rels {
			if r.Version < cur.Version && r.Status == skiff.ReleaseDeployed {
				target = r
				break
			}
		}
		if target == nil {
			return skiff.Errorf(skiff.ENOTFOUND, "%s has no earlier deployed release to roll back to", app.Name)
		}
	} else if target, err = p.cfg.Store.FindRelease(ctx, app.ID, version); err != nil {
		return err
	}
	if target.Status == skiff.ReleaseFailed {
		return skiff.Errorf(skiff.EINVALID, "v%d failed to deploy; roll back to a release that ran", target.Version)
	}
	for _, m := range target.Mounts {
		if v, err := p.cfg.Store.FindVolume(ctx, m.Volume); err != nil || v.ID != m.VolumeID {
			return skiff.Errorf(skiff.ENOTFOUND, "v%d mounts storage %s, which no longer exists; roll back to another release", target.Version, m.Volume)
		}
	}
	if p.cfg.ReleaseImages != nil {
		kept, err := p.cfg.ReleaseImages(ctx, p.cfg.KeepReleases)
		if err != nil {
			return err
		}
		if !slices.Contains(kept, target.Image) {
			return skiff.Errorf(skiff.ENOTFOUND, "the image of v%d is gone: skiff keeps the images of each app's last %d releases; push commit %s again to get it back",
				target.Version, p.cfg.KeepReleases, skiff.ShortID(target.Commit))
		}
	}
	vars, err := p.cfg.Store.Config(ctx, app.ID)
	if err != nil {
		return err
	}
	// The config becomes the target's: set its vars, unset the others.
	ch := &skiff.ConfigChange{Set: target.Config}
	for k := range vars {
		if _, ok := target.Config[k]; !ok {
			ch.Unset = append(ch.Unset, k)
		}
	}
	rel := &skiff.Release{AppID: app.ID, Image: target.Image, Config: target.Config, ProcessTypes: target.ProcessTypes,
		Scripts: target.Scripts, Cron: target.Cron, Mounts: target.Mounts, BuildID: target.BuildID, Commit: target.Commit, Description: fmt.Sprintf("Rollback to v%d", target.Version)}
	return p.release(ctx, app, rel, ch, out)
}

// Scale sets how many instances of each process type run, without a new
// release: instances are added or removed, the others keep running.
func (p *Pipeline) Scale(ctx context.Context, app *skiff.App, quantities map[string]int, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "scale")
	if err != nil {
		return err
	}
	defer unlock()
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		return err
	}
	cur, curErr := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if curErr != nil {
		cur = nil
	}
	change := skiff.Formation{}
	for t, n := range quantities {
		if err := skiff.CheckScalable(app, cur, t); err != nil {
			return err
		}
		s := f[t]
		s.Quantity = n
		change[t] = s
	}
	if err := p.cfg.Store.SetFormation(ctx, app.ID, change); err != nil {
		return err
	}
	if curErr != nil {
		return nil // takes effect at the first deploy
	}
	p.appLog(app, "Scaled to %s by %s", formatQuantities(quantities), skiff.ActorFrom(ctx).Name)
	return p.convergeCurrent(ctx, app, rollout{}, out)
}

// SetLimits sets the resource limits of a process type; its instances are
// replaced, one switch like a restart.
func (p *Pipeline) SetLimits(ctx context.Context, app *skiff.App, processType string, limits skiff.Limits, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "resource change")
	if err != nil {
		return err
	}
	defer unlock()
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		return err
	}
	s, ok := f[processType]
	if !ok && processType == "web" {
		s.Quantity = 1
	}
	s.Limits = limits
	if err := p.cfg.Store.SetFormation(ctx, app.ID, skiff.Formation{processType: s}); err != nil {
		return err
	}
	return p.convergeCurrent(ctx, app, rollout{types: map[string]bool{processType: true}}, out)
}

// Restart replaces the instances of one process type ("" for all) with new
// ones of the same release, through the same health-gated switch.
func (p *Pipeline) Restart(ctx context.Context, app *skiff.App, processType string, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "restart")
	if err != nil {
		return err
	}
	defer unlock()
	ro := rollout{all: processType == ""}
	if processType != "" {
		ro.types = map[string]bool{processType: true}
	}
	p.appLog(app, "Restarting %s by %s", orAll(processType), skiff.ActorFrom(ctx).Name)
	return p.convergeCurrent(ctx, app, ro, out)
}

// Stop stops the instances of one process type ("" for all) until Start;
// the app keeps its formation.
func (p *Pipeline) Stop(ctx context.Context, app *skiff.App, processType string, out io.Writer) error {
	return p.setStopped(ctx, app, processType, true, out)
}

// Start undoes Stop.
func (p *Pipeline) Start(ctx context.Context, app *skiff.App, processType string, out io.Writer) error {
	return p.setStopped(ctx, app, processType, false, out)
}

func (p *Pipeline) setStopped(ctx context.Context, app *skiff.App, processType string, stop bool, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "ps:stop/start")
	if err != nil {
		return err
	}
	defer unlock()
	action := "ps:start"
	if stop {
		action = "ps:stop"
	}
	if _, err := p.changeSettings(ctx, app, action, func(s *skiff.Settings) error {
		s.SetStopped(processType, stop)
		return nil
	}); err != nil {
		return err
	}
	p.appLog(app, "%s %s by %s", map[bool]string{true: "Stopping", false: "Starting"}[stop], orAll(processType), skiff.ActorFrom(ctx).Name)
	return p.convergeCurrent(ctx, app, rollout{}, out)
}

// convergeCurrent converges the current release, if there is one.
func (p *Pipeline) convergeCurrent(ctx context.Context, app *skiff.App, ro rollout, out io.Writer) error {
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	return p.converge(ctx, app, cur, ro, out)
}

// Run runs a one-off instance of the current release, attached to the
// caller's streams, and returns its exit code.
func (p *Pipeline) Run(ctx context.Context, app *skiff.App, req *skiff.RunRequest) (int, error) {
	if p.cfg.Scheduler == nil {
		return 1, skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps")
	}
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if err != nil {
		return 1, skiff.Errorf(skiff.ENOTFOUND, "%s has not been deployed yet; push first", app.Name)
	}
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		return 1, err
	}
	req.Spec = skiff.OneOffSpec(app, cur, skiff.OneOffRun, f)
	if req.TTY != nil && validTerm(req.TTY.Term) {
		// The client's terminal type, as ssh -t sends it: without it
		// the shell says TERM=dumb and full-screen programs (less,
		// top, vim, clear) cannot draw.
		env := maps.Clone(req.Spec.Env)
		if env == nil {
			env = map[string]string{}
		}
		env["TERM"] = req.TTY.Term
		req.Spec.Env = env
	}
	p.appLog(app, "Starting process with command `%s` by %s", strings.Join(req.Args, " "), skiff.ActorFrom(ctx).Name)
	return p.sched.Run(ctx, req)
}

// validTerm tells whether a client's TERM is a terminal type's name
// (terminfo's names: letters, digits and . _ + -), and nothing else.
func validTerm(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-", r)) {
			return false
		}
	}
	return true
}

func (p *Pipeline) appLog(app *skiff.App, format string, args ...any) {
	if p.cfg.Scheduler != nil {
		p.sched.AppLog(app.ID, "", fmt.Sprintf(format, args...))
	}
}

func orAll(t string) string {
	if t == "" {
		return "all processes"
	}
	return t
}

func formatQuantities(q map[string]int) string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(q)) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, q[t]))
	}
	return strings.Join(parts, " ")
}
