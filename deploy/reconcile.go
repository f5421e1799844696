package deploy

import (
	"context"
	"io"
	"strings"

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
	known := map[string]*skiff.App{}
	converged := map[string]bool{}
	for _, app := range apps {
		known[app.ID] = app
		if err := p.reconcileApp(ctx, app); err != nil {
			p.log.Error("reconcile", "app", app.Name, "err", err)
		} else {
			converged[app.ID] = true
		}
	}
	if p.cfg.Scheduler == nil {
		return nil
	}
	instances, err := p.sched.Instances(ctx, "")
	if err != nil {
		return err
	}
	// What is left of destroyed apps, and of apps that moved to another
	// scheduler while a daemon died (once the app runs where it should).
	done := map[string]bool{}
	for _, in := range instances {
		cluster, _, _ := strings.Cut(in.ID, "/")
		if !strings.Contains(in.ID, "/") {
			cluster = ""
		}
		key := cluster + " " + in.Spec.AppID
		if done[key] {
			continue
		}
		s, err := p.clusterScheduler(ctx, cluster)
		if err != nil {
			continue
		}
		app := known[in.Spec.AppID]
		switch {
		case app == nil:
			done[key] = true
			p.log.Info("removing the instances of a destroyed app", "app", in.Spec.AppName, "where", where(cluster))
			if err := s.RemoveApp(ctx, in.Spec.AppID); err != nil {
				p.log.Error("remove instances", "app", in.Spec.AppName, "err", err)
			}
		case converged[app.ID] && !p.runsOn(ctx, app.ID, cluster):
			done[key] = true
			p.log.Info("removing what a moved app left", "app", app.Name, "where", where(cluster))
			if err := p.evict(ctx, s, app); err != nil {
				p.log.Error("remove what a moved app left", "app", app.Name, "err", err)
			}
		}
	}
	return nil
}

// runsOn reports whether the app's setting names cluster ("": this server).
func (p *Pipeline) runsOn(ctx context.Context, appID, cluster string) bool {
	s, err := p.cfg.Store.Settings(ctx, appID)
	if err != nil && (s == nil || skiff.ErrorCode(err) != skiff.EINVALID) {
		return true // unknown: leave it
	}
	return s.Cluster == cluster
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
		ins, err := p.sched.Instances(ctx, app.ID)
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
