package deploy

import (
	"context"
	"crypto/rand"
	"io"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// AddCluster implements skiff.Deployer.
func (p *Pipeline) AddCluster(ctx context.Context, c *skiff.Cluster) error {
	if err := skiff.ValidateClusterName(c.Name); err != nil {
		return err
	}
	if p.cfg.Clusters == nil || p.cfg.Scheduler == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps, so none on a cluster either")
	}
	if _, err := p.cfg.Store.FindCluster(ctx, c.Name); err == nil {
		return skiff.Errorf(skiff.ECONFLICT, "cluster %s exists already; clusters:remove %s first to replace it", c.Name, c.Name)
	}
	server, version, err := p.cfg.Clusters.Check(ctx, c)
	if err != nil {
		return err
	}
	c.Server, c.Version = server, version
	c.Secret = make([]byte, 32)
	if _, err := rand.Read(c.Secret); err != nil {
		return err
	}
	return p.cfg.Store.CreateCluster(ctx, c)
}

// RemoveCluster implements skiff.Deployer.
func (p *Pipeline) RemoveCluster(ctx context.Context, name string) error {
	if _, err := p.cfg.Store.FindCluster(ctx, name); err != nil {
		return err
	}
	apps, err := p.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		return err
	}
	var on []string
	for _, app := range apps {
		if s, err := p.cfg.Store.Settings(ctx, app.ID); s != nil && s.Cluster == name && (err == nil || skiff.ErrorCode(err) == skiff.EINVALID) {
			on = append(on, app.Name)
		}
	}
	if len(on) > 0 {
		slices.Sort(on)
		return skiff.Errorf(skiff.ECONFLICT, "%s run on cluster %s; move them first (scheduler:set %s local) or destroy them",
			strings.Join(on, ", "), name, on[0])
	}
	if err := p.cfg.Store.DeleteCluster(ctx, name); err != nil {
		return err
	}
	if p.cfg.Clusters != nil {
		p.cfg.Clusters.Close(name)
	}
	return nil
}

// SetScheduler implements skiff.Deployer: the app's current release starts
// on the new scheduler and takes the traffic there, and only then is what
// it had on the old one removed; if it does not become ready, the setting
// and the traffic stay where they were.
func (p *Pipeline) SetScheduler(ctx context.Context, app *skiff.App, cluster string, out io.Writer) error {
	if cluster != "" {
		if err := skiff.ValidateClusterName(cluster); err != nil {
			return err
		}
		if _, err := p.cfg.Store.FindCluster(ctx, cluster); err != nil {
			return err
		}
	}
	if p.cfg.Scheduler == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps")
	}
	unlock, err := p.locks.lock(ctx, app, "scheduler:set")
	if err != nil {
		return err
	}
	defer unlock()
	settings, err := p.settings(ctx, app)
	if err != nil {
		return err
	}
	from := settings.Cluster
	if from == cluster {
		detail(out, "%s runs on %s already", app.Name, where(cluster))
		return nil
	}
	to, err := p.clusterScheduler(ctx, cluster)
	if err != nil {
		return err
	}
	if cluster != "" {
		if err := p.clusterCan(ctx, app, cluster); err != nil {
			return err
		}
	}
	if mounts, err := p.cfg.Store.Mounts(ctx, app.ID); err != nil {
		return err
	} else if len(mounts) > 0 {
		return skiff.Errorf(skiff.EINVALID, "%s mounts storage %s, whose data is on %s and does not move with the app: storage:unmount it first, or keep the app there",
			app.Name, mounts[0].Volume, where(from))
	}
	if _, err := p.cfg.Store.CurrentRelease(ctx, app.ID); from != "" && err == nil { // a claim comes with a release
		if err := p.checkNoClaims(ctx, app, from); err != nil {
			return err
		}
	}
	old, err := p.clusterScheduler(ctx, from)
	if err != nil {
		return err
	}
	set := func(c string) error {
		_, err := p.changeSettings(ctx, app, "scheduler:set", func(s *skiff.Settings) error {
			s.Cluster = c
			return nil
		})
		return err
	}
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		if err := set(cluster); err != nil {
			return err
		}
		detail(out, "%s will run on %s from its first deploy", app.Name, where(cluster))
		return nil
	} else if err != nil {
		return err
	}
	if err := set(cluster); err != nil {
		return err
	}
	if p.cfg.OnRelease != nil {
		p.cfg.OnRelease(app.ID) // its cron jobs go with it
	}
	step(out, "Moving %s from %s to %s", app.Name, where(from), where(cluster))
	if err := p.converge(ctx, app, cur, rollout{all: true}, out); err != nil {
		bg := context.WithoutCancel(ctx)
		if serr := set(from); serr != nil {
			p.log.Error("undo scheduler:set", "app", app.Name, "err", serr)
		}
		if p.cfg.OnRelease != nil {
			p.cfg.OnRelease(app.ID)
		}
		if eerr := p.evict(bg, to, app); eerr != nil {
			p.log.Error("remove what a failed move started", "app", app.Name, "where", where(cluster), "err", eerr)
		}
		if p.cfg.Routes != nil {
			p.routeUp(bg, app)
		}
		return skiff.Errorf(skiff.ErrorCode(err), "%s stays on %s: %s", app.Name, where(from), skiff.ErrorMessage(err))
	}
	step(out, "Removing %s from %s", app.Name, where(from))
	if err := p.evict(ctx, old, app); err != nil {
		return skiff.Errorf(skiff.ErrorCode(err), "%s runs on %s now, but what it had on %s could not all be removed: %s (the next start of skiff tries again)",
			app.Name, where(cluster), where(from), skiff.ErrorMessage(err))
	}
	p.appLog(app, "Moved from %s to %s by %s", where(from), where(cluster), skiff.ActorFrom(ctx).Name)
	if p.cfg.OnRelease != nil {
		p.cfg.OnRelease(app.ID)
	}
	return nil
}

// evict removes what the app has on a scheduler it no longer runs on.
func (p *Pipeline) evict(ctx context.Context, s skiff.Scheduler, app *skiff.App) error {
	if rs, ok := s.(skiff.RolloutScheduler); ok {
		return rs.Evict(ctx, app.ID)
	}
	ins, err := s.Instances(ctx, app.ID)
	if err != nil {
		return err
	}
	p.stopAll(ctx, ins, p.cfg.StopGrace)
	return nil
}

// RunsElsewhere reports whether the app runs on a cluster, whose own
// scheduler runs its cron jobs (as CronJobs).
func (p *Pipeline) RunsElsewhere(ctx context.Context, appID string) bool {
	s, err := p.cfg.Store.Settings(ctx, appID)
	return s != nil && s.Cluster != "" && (err == nil || skiff.ErrorCode(err) == skiff.EINVALID)
}

// where names a scheduler for users.
func where(cluster string) string {
	if cluster == "" {
		return "this server"
	}
	return "cluster " + cluster
}

// CronChanged gives the scheduler of an app on a cluster its cron jobs
// again, after one was suspended or resumed (they are part of its
// formation there); for an app on this server it does nothing.
func (p *Pipeline) CronChanged(ctx context.Context, app *skiff.App) error {
	if !p.RunsElsewhere(ctx, app.ID) {
		return nil
	}
	unlock, err := p.locks.lock(ctx, app, "cron change")
	if err != nil {
		return err
	}
	defer unlock()
	return p.convergeCurrent(ctx, app, rollout{}, io.Discard)
}
