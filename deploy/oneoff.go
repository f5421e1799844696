package deploy

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

// Detached runs (Dokku's run:detached): a one-off of the current release
// that outlives the SSH session that started it (and the daemon, like an
// instance), named run.<N> with N a random four-digit number as on Heroku
// and Dokku, listed until it has ended and been reaped. Its output is in
// the app's log.

// MaxDetachedRuns caps the detached runs of one app that run at once: each
// is a container with its own address from the server's pool, so one app
// must not take them all.
const MaxDetachedRuns = 20

// RunDetached starts command as a detached one-off of the current release
// and returns at once with its instance.
func (p *Pipeline) RunDetached(ctx context.Context, app *skiff.App, command string) (*skiff.Instance, error) {
	if p.cfg.Scheduler == nil {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps")
	}
	if strings.TrimSpace(command) == "" {
		return nil, skiff.Errorf(skiff.EINVALID, "run:detached needs a command")
	}
	// It is listed to every user of the app (run:list): no terminal
	// escapes in it.
	if err := skiff.ValidateCommand(command); err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "run:detached: %s", skiff.ErrorMessage(err))
	}
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if err != nil {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "%s has not been deployed yet; push first", app.Name)
	}
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	existing, err := p.sched.Instances(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	running := 0
	for _, in := range existing {
		if in.Spec.OneOff && in.Spec.ProcessType == skiff.OneOffRun && in.State != skiff.InstanceExited {
			running++
		}
	}
	if running >= MaxDetachedRuns {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "%s has %d detached runs running, the most it may have at once; wait for one to end, or run:stop one (run:list %s shows them)",
			app.Name, running, app.Name)
	}
	spec := skiff.OneOffSpec(app, cur, skiff.OneOffRun, f)
	spec.Command, spec.OneOff = []string{command}, true
	for range 100 {
		n, _ := rand.Int(rand.Reader, big.NewInt(9000))
		spec.Index = 1000 + int(n.Int64())
		if !slices.ContainsFunc(existing, func(in *skiff.Instance) bool { return in.Spec.Name() == spec.Name() }) {
			break
		}
	}
	p.appLog(app, "Starting detached process %s with command `%s` by %s", spec.Name(), oneLine(command), skiff.ActorFrom(ctx).Name)
	return p.sched.Start(ctx, &spec)
}

// DetachedRuns lists the app's detached runs: those running, and those
// that ended in the last minute.
func (p *Pipeline) DetachedRuns(ctx context.Context, app *skiff.App) ([]*skiff.Instance, error) {
	if p.cfg.Scheduler == nil {
		return []*skiff.Instance{}, nil
	}
	ins, err := p.sched.Instances(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	runs := []*skiff.Instance{}
	for _, in := range ins {
		if in.Spec.OneOff && in.Spec.ProcessType == skiff.OneOffRun {
			runs = append(runs, in)
		}
	}
	return runs, nil
}

// DetachedRun finds one of the app's detached runs by name (run.1234) or
// instance id.
func (p *Pipeline) DetachedRun(ctx context.Context, app *skiff.App, name string) (*skiff.Instance, error) {
	runs, err := p.DetachedRuns(ctx, app)
	if err != nil {
		return nil, err
	}
	for _, in := range runs {
		if in.Spec.Name() == name || in.ID == name {
			return in, nil
		}
	}
	return nil, skiff.Errorf(skiff.ENOTFOUND, "%s has no detached run %s; run:list %s shows them", app.Name, name, app.Name)
}

// StopRun stops a detached run (SIGTERM, then SIGKILL after the grace)
// and removes it.
func (p *Pipeline) StopRun(ctx context.Context, app *skiff.App, name string) error {
	in, err := p.DetachedRun(ctx, app, name)
	if err != nil {
		return err
	}
	p.appLog(app, "Stopping detached process %s by %s", in.Spec.Name(), skiff.ActorFrom(ctx).Name)
	return p.sched.Stop(ctx, in.ID, 10*time.Second)
}

// reapDetached removes the app's detached runs that ended a while ago.
func (p *Pipeline) reapDetached(ctx context.Context, app *skiff.App, ins []*skiff.Instance) {
	for _, in := range ins {
		if !in.Spec.OneOff || in.Spec.ProcessType != skiff.OneOffRun || in.State != skiff.InstanceExited {
			continue
		}
		if ended := in.LastExitAt; !ended.IsZero() && time.Since(ended) < p.cfg.DetachedReapAfter {
			continue
		}
		if err := p.sched.Stop(ctx, in.ID, time.Second); err != nil {
			p.log.Warn("reap a detached run", "app", app.Name, "run", in.Spec.Name(), "err", err)
			continue
		}
		p.sched.AppLog(app.ID, in.Spec.Name(), fmt.Sprintf("Detached process removed (exit status %d)", in.ExitCode))
	}
}
