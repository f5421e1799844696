package deploy

import (
	"context"
	"time"

	"github.com/skiffhq/skiff"
)

// Watch keeps the router's backends in step with the instances that are up,
// until ctx ends: an instance that crashed leaves the pool, and one that is
// back joins it again after passing the health check. Deploys do the same
// for the instances they start; this covers what happens between them. An
// app busy with a deploy is skipped until the next round. It also reaps
// detached runs that ended a while ago.
func (p *Pipeline) Watch(ctx context.Context, every time.Duration) {
	if p.cfg.Scheduler == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		apps, err := p.cfg.Store.ListApps(ctx, skiff.AppFilter{})
		if err != nil {
			p.log.Error("watch", "err", err)
			continue
		}
		for _, app := range apps {
			if ctx.Err() != nil {
				return
			}
			if ins, err := p.sched.Instances(ctx, app.ID); err == nil {
				p.reapDetached(ctx, app, ins)
			}
			if p.cfg.Routes != nil {
				p.syncBackends(ctx, app)
			}
		}
	}
}

// syncBackends routes to the current release's web instances that are up.
func (p *Pipeline) syncBackends(ctx context.Context, app *skiff.App) {
	unlock, err := p.locks.lockBackground(skiff.WithActor(ctx, &skiff.Actor{Name: "skiff"}), app, "health sync")
	if err != nil {
		return // busy: a deploy sets the backends itself
	}
	defer unlock()
	p.routeUp(ctx, app)
}

// routeUp routes to the current release's web instances that are up; the
// caller holds the app's lock.
func (p *Pipeline) routeUp(ctx context.Context, app *skiff.App) {
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if err != nil {
		return
	}
	if s, err := p.schedulerFor(ctx, app.ID); err != nil {
		return
	} else if _, ok := s.(skiff.RolloutScheduler); ok {
		p.followBackends(ctx, app.ID) // what the cluster says is ready
		return
	}
	ins, err := p.sched.Instances(ctx, app.ID)
	if err != nil {
		return
	}
	addrs := upWeb(ins, cur.Version)
	if len(addrs) == 0 {
		return // nothing up: keep what the router has, its passive checks answer
	}
	if err := p.cfg.Routes.Deploy(ctx, app.ID, addrs); err != nil && ctx.Err() == nil {
		p.log.Debug("health sync", "app", app.Name, "err", err)
	}
}
