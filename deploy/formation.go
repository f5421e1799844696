package deploy

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// Apps whose scheduler is a RolloutScheduler (on a cluster) run their
// formation as a whole: a release, a scale, a restart or a rollback is
// one Rollout, which the push waits for, with the cluster's progress
// streamed to it. Traffic moves pod by pod as the cluster replaces them:
// the router's backends follow the ready web pods the scheduler reports
// (BackendsChanged). A release whose rollout fails is rolled back by
// applying the current release again, and the push is rejected.

// rollOut is converge for a RolloutScheduler.
func (p *Pipeline) rollOut(ctx context.Context, app *skiff.App, rel *skiff.Release, want map[string]skiff.Scale, settings *skiff.Settings,
	ro rollout, rs skiff.RolloutScheduler, out io.Writer) error {
	if err := p.clusterCan(ctx, app, settings.Cluster); err != nil {
		return err
	}
	var restart []string
	if ro.all && ro.commit == nil {
		restart = []string{"*"}
	}
	for t := range ro.types {
		restart = append(restart, t)
	}
	slices.Sort(restart)
	spec, err := p.formationSpec(ctx, app, rel, want, settings, restart)
	if err != nil {
		return err
	}
	step(out, "Rolling out v%d on cluster %s: %s", rel.Version, settings.Cluster, scaleText(want))
	if err := rs.Rollout(ctx, spec, func(line string) { detail(out, "%s", line) }); err != nil {
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			p.log.Error("rollout", "app", app.Name, "cluster", settings.Cluster, "err", err)
		}
		if ro.commit != nil {
			p.rollBack(ctx, app, rel, rs, out)
		}
		return err
	}
	if p.cfg.Routes != nil {
		if err := p.setRoute(ctx, app, settings); err != nil {
			return err
		}
		addrs, err := rs.Backends(ctx, app.ID)
		if err != nil {
			return err
		}
		// A cluster that serves the traffic (an Ingress) leaves skiff's
		// router with no backends for the app (those it had here drain).
		if len(addrs) > 0 || want["web"].Quantity == 0 || selfRouted(rs) {
			if err := p.cfg.Routes.Deploy(ctx, app.ID, addrs); err != nil {
				if ro.commit != nil {
					p.rollBack(ctx, app, rel, rs, out)
				}
				return skiff.Errorf(skiff.ErrorCode(err), "the new pods failed the health check: %s", skiff.ErrorMessage(err))
			}
		}
	}
	if ro.commit != nil {
		if err := ro.commit(); err != nil {
			p.rollBack(ctx, app, rel, rs, out)
			return err
		}
	}
	return nil
}

// clusterCan refuses what an app on a cluster cannot have: links to this
// server's services, which the cluster's pods cannot reach.
func (p *Pipeline) clusterCan(ctx context.Context, app *skiff.App, cluster string) error {
	links, err := p.cfg.Store.AppLinks(ctx, app.ID)
	if err != nil {
		return err
	}
	if len(links) > 0 {
		var vars []string
		for _, l := range links {
			vars = append(vars, l.Var)
		}
		return skiff.Errorf(skiff.EINVALID, "%s is linked to services of this server (%s), which the pods of cluster %s cannot reach; unlink them, or keep the app here (scheduler:set %s local)",
			app.Name, strings.Join(vars, ", "), cluster, app.Name)
	}
	return nil
}

// formationSpec is what a RolloutScheduler runs for rel at want.
func (p *Pipeline) formationSpec(ctx context.Context, app *skiff.App, rel *skiff.Release, want map[string]skiff.Scale, settings *skiff.Settings, restart []string) (*skiff.FormationSpec, error) {
	states, err := p.cfg.Store.CronStates(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	hosts, err := p.hosts(ctx, app)
	if err != nil {
		return nil, err
	}
	spec := &skiff.FormationSpec{AppID: app.ID, AppName: app.Name, Release: rel.Version, Image: rel.Image, Env: rel.Config,
		Check: settings.HealthCheck(), DrainTimeout: settings.WaitToRetire, Cron: rel.Cron, Restart: restart, Hosts: hosts,
		CronMounts: skiff.MountsFor(rel.Mounts, skiff.OneOffCron)}
	for _, st := range states {
		if st.Suspended {
			spec.CronSuspended = append(spec.CronSuspended, st.JobID)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(want)) {
		spec.Processes = append(spec.Processes, skiff.ProcessSpec{Type: t, Quantity: want[t].Quantity, Limits: want[t].Limits,
			Mounts: skiff.MountsFor(rel.Mounts, t)})
	}
	return spec, nil
}

// rollBack applies the app's current release again after failed, a new
// release, did not roll out (the cluster has it half done); for an app's
// first release, it removes what failed applied.
func (p *Pipeline) rollBack(ctx context.Context, app *skiff.App, failed *skiff.Release, rs skiff.RolloutScheduler, out io.Writer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		step(out, "Removing what v%d applied", failed.Version)
		if err := rs.Evict(ctx, app.ID); err != nil {
			p.log.Error("remove a failed first release", "app", app.Name, "err", err)
		}
		return
	} else if err != nil {
		p.log.Error("roll back", "app", app.Name, "err", err)
		return
	}
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		p.log.Error("roll back", "app", app.Name, "err", err)
		return
	}
	settings, err := p.settings(ctx, app)
	if err != nil {
		p.log.Error("roll back", "app", app.Name, "err", err)
		return
	}
	spec, err := p.formationSpec(ctx, app, cur, desiredScale(cur, f, settings), settings, nil)
	if err != nil {
		p.log.Error("roll back", "app", app.Name, "err", err)
		return
	}
	step(out, "Rolling back to v%d", cur.Version)
	if err := rs.Rollout(ctx, spec, func(line string) { detail(out, "%s", line) }); err != nil {
		fmt.Fprintf(out, " !     The rollback to v%d did not finish: %s\n", cur.Version, skiff.ErrorMessage(err))
		p.log.Error("roll back", "app", app.Name, "version", cur.Version, "err", err)
	}
}

func scaleText(want map[string]skiff.Scale) string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(want)) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, want[t].Quantity))
	}
	return strings.Join(parts, " ")
}

// backendSync runs the router updates of BackendsChanged: one at a time
// per app, the latest change winning.
type backendSync struct {
	mu      sync.Mutex
	running map[string]bool
	again   map[string]bool
}

// BackendsChanged is how a RolloutScheduler tells that the ready web
// processes of an app changed (a pod became ready, or is stopping): the
// router's backends follow at once, outside the app's lock, since a
// rollout in progress moves the traffic pod by pod. An app that is not on
// a RolloutScheduler is left alone.
func (p *Pipeline) BackendsChanged(appID string) {
	b := &p.backends
	b.mu.Lock()
	if b.running[appID] {
		if b.again == nil {
			b.again = map[string]bool{}
		}
		b.again[appID] = true
		b.mu.Unlock()
		return
	}
	b.running[appID] = true
	b.mu.Unlock()
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			p.followBackends(ctx, appID)
			cancel()
			b.mu.Lock()
			if !b.again[appID] {
				delete(b.running, appID)
				b.mu.Unlock()
				return
			}
			delete(b.again, appID)
			b.mu.Unlock()
		}
	}()
}

// followBackends gives the router the app's ready web processes.
func (p *Pipeline) followBackends(ctx context.Context, appID string) {
	if p.cfg.Routes == nil {
		return
	}
	s, err := p.schedulerFor(ctx, appID)
	rs, ok := s.(skiff.RolloutScheduler)
	if err != nil || !ok {
		return
	}
	addrs, err := rs.Backends(ctx, appID)
	if err != nil {
		p.log.Warn("the ready pods of an app", "app", appID, "err", err)
		return
	}
	if err := p.cfg.Routes.Deploy(ctx, appID, addrs); err != nil && skiff.ErrorCode(err) != skiff.ENOTFOUND {
		p.log.Warn("route to the ready pods of an app", "app", appID, "err", err)
	}
}
