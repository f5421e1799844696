package deploy

import (
	"context"
	"io"

	"github.com/skiffhq/skiff"
)

// Reconcile converges what runs to what the store says should, once the
// daemon serves (after Recover): every app gets its route, and the
// instances of each app's current release are re-adopted, completed or
// started, while instances of any other release, or of apps that no
// longer exist, are stopped. It does one app at a time, under the app's
// lock, settling first a deploy that a daemon's death interrupted (as
// Recover does, for an app Recover could not reach).
func (p *Pipeline) Reconcile(ctx context.Context) error {
	apps, err := p.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, app := range apps {
		known[app.ID] = true
		if err := p.reconcileApp(ctx, app); err != nil {
			p.log.Error("reconcile", "app", app.Name, "err", err)
		}
	}
	if p.cfg.Scheduler == nil {
		return nil
	}
	instances, err := p.cfg.Scheduler.Instances(ctx, "")
	if err != nil {
		return err
	}
	for _, in := range instances {
		if !known[in.Spec.AppID] {
			known[in.Spec.AppID] = true
			p.log.Info("removing the instances of a destroyed app", "app", in.Spec.AppName)
			if err := p.cfg.Scheduler.RemoveApp(ctx, in.Spec.AppID); err != nil {
				p.log.Error("remove instances", "app", in.Spec.AppName, "err", err)
			}
		}
	}
	return nil
}

func (p *Pipeline) reconcileApp(ctx context.Context, app *skiff.App) error {
	unlock, err := p.locks.lockBackground(skiff.WithActor(ctx, &skiff.Actor{Name: "skiff"}), app, "start-up")
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.setRoute(ctx, app, nil); err != nil {
		return err
	}
	if err := p.settleInterrupted(ctx, app); err != nil {
		return err
	}
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		if p.cfg.Scheduler == nil {
			return nil
		}
		// Instances of a first release that never deployed.
		ins, err := p.cfg.Scheduler.Instances(ctx, app.ID)
		if err != nil {
			return err
		}
		p.stopAll(ctx, ins, 0)
		return nil
	} else if err != nil {
		return err
	}
	return p.converge(ctx, app, cur, rollout{}, io.Discard)
}
