package deploy

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// Recover is what a daemon does first, before it serves anything: the
// builds the previous daemon's death interrupted are marked failed (their
// pushes were rejected when the hook died), each app's interrupted deploy
// is settled (settleInterrupted), and the router gets every app's hosts and
// the web instances of its current release that are up. Across a restart
// the instances keep running, so requests wait in the listen queue for a
// moment instead of meeting an unknown host (404) or an app without
// instances (503) while Reconcile works through the apps one by one. Apps
// are done concurrently; one whose instances do not pass the router's
// check within the deadline is left to Reconcile.
func (p *Pipeline) Recover(ctx context.Context, deadline time.Duration) {
	start := time.Now()
	if n, err := p.cfg.Store.FailRunningBuilds(ctx, "interrupted: the daemon restarted"); err != nil {
		p.log.Error("recover builds", "err", err)
	} else if n > 0 {
		p.log.Warn("builds interrupted by a restart marked failed", "count", n)
	}
	apps, err := p.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		p.log.Error("recover", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var wg sync.WaitGroup
	for _, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.recoverApp(ctx, app)
		}()
	}
	wg.Wait()
	p.log.Info("recovered", "apps", len(apps), "took", time.Since(start).Round(time.Millisecond))
}

func (p *Pipeline) recoverApp(ctx context.Context, app *skiff.App) {
	unlock, err := p.locks.lockBackground(skiff.WithActor(ctx, &skiff.Actor{Name: "skiff"}), app, "start-up")
	if err != nil {
		return
	}
	defer unlock()
	if err := p.setRoute(ctx, app, nil); err != nil {
		p.log.Error("restore route", "app", app.Name, "err", err)
		return
	}
	if err := p.settleInterrupted(ctx, app); err != nil {
		p.log.Error("settle an interrupted deploy", "app", app.Name, "err", err)
	}
	if p.cfg.Scheduler != nil && p.cfg.Routes != nil {
		p.routeUp(ctx, app)
	}
}

// settleInterrupted decides what a deploy that a daemon's death
// interrupted leaves current; the caller holds the app's lock (so every
// pending release it finds is an interrupted one) and has given the router
// the app's route. The newest pending release becomes current when it had
// taken the traffic: its web instances are up and pass the router's health
// check (which routes to them at once), while the current release has none
// up (they were being stopped); on a cluster, when its rollout is done
// there (rolloutState) and, where skiff's router serves the app, its web
// pods pass the check. Otherwise the current release stays, and the
// pending ones are marked failed; Reconcile then converges to the current one. Either way
// exactly one release is current, and it is the one with healthy
// instances.
func (p *Pipeline) settleInterrupted(ctx context.Context, app *skiff.App) error {
	rels, err := p.cfg.Store.ListReleases(ctx, app.ID, 20)
	if err != nil {
		return err
	}
	var pending []*skiff.Release // newest first
	var cur *skiff.Release
	for _, r := range rels {
		switch {
		case r.Status == skiff.ReleasePending:
			pending = append(pending, r)
		case r.Current:
			cur = r
		}
	}
	if len(pending) == 0 {
		return nil
	}
	promote := false
	if p.cfg.Scheduler != nil {
		rs, err := p.schedulerFor(ctx, app.ID)
		if err != nil {
			return err
		}
		ins, err := p.sched.Instances(ctx, app.ID)
		if err != nil {
			return err
		}
		next := upWeb(ins, pending[0].Version)
		if ro, ok := rs.(rolloutState); ok {
			// The cluster went on with the rollout after the daemon died:
			// its Deployments tell whether the release took over, in every
			// traffic mode (skiff's router carries no Ingress's traffic).
			done, err := ro.RolledOut(ctx, app.ID, pending[0].Version, pending[0].ScalableTypes())
			if err != nil {
				return err
			}
			promote = done && (selfRouted(rs) || len(next) == 0 || p.cfg.Routes == nil || p.cfg.Routes.Deploy(ctx, app.ID, next) == nil)
		} else if len(next) > 0 && (cur == nil || len(upWeb(ins, cur.Version)) == 0) {
			promote = p.cfg.Routes == nil || p.cfg.Routes.Deploy(ctx, app.ID, next) == nil
		}
	}
	for i, r := range pending {
		if promote && i == 0 {
			if err := p.cfg.Store.DeployRelease(ctx, app.ID, r.Version, r.Change); err != nil {
				return err
			}
			p.log.Warn("an interrupted deploy had taken the traffic: its release is current", "app", app.Name, "version", r.Version)
			p.appLog(app, "Deployed v%d (%s): it had taken the traffic when the daemon stopped", r.Version, r.Description)
			continue
		}
		if err := p.cfg.Store.FailRelease(ctx, app.ID, r.Version, "interrupted: the daemon restarted"); err != nil {
			return err
		}
		p.log.Warn("a release interrupted by a restart marked failed", "app", app.Name, "version", r.Version)
	}
	return nil
}

// rolloutState is a scheduler that tells from its own state whether the
// rollout of an app's release is done (a cluster's Deployments): every
// process type of it runs that release's processes, all ready, and no
// older one.
type rolloutState interface {
	RolledOut(ctx context.Context, appID string, version int, processTypes []string) (bool, error)
}

// upWeb returns the sorted addresses of a release's web instances that
// are up.
func upWeb(ins []*skiff.Instance, version int) []string {
	var addrs []string
	for _, in := range ins {
		if in.Spec.Release == version && in.Spec.ProcessType == "web" && !in.Spec.OneOff && in.State == skiff.InstanceUp && in.Addr != "" {
			addrs = append(addrs, in.Addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}
