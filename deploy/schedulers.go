package deploy

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

// Which scheduler runs an app: this server's (Config.Scheduler), unless
// the app's settings name a cluster (scheduler:set), whose scheduler
// Config.Clusters opens. deploy alone decides it, from the setting; every
// call about an app goes to the app's scheduler. Instance IDs of a
// cluster's scheduler start with "<cluster>/", so a call by ID finds its
// scheduler too.

// schedulerFor returns the scheduler of the app with the id; nil when this
// server runs no apps.
func (p *Pipeline) schedulerFor(ctx context.Context, appID string) (skiff.Scheduler, error) {
	if p.cfg.Scheduler == nil {
		return nil, nil
	}
	s, err := p.cfg.Store.Settings(ctx, appID)
	if err != nil && (s == nil || skiff.ErrorCode(err) != skiff.EINVALID) {
		return nil, err
	}
	return p.clusterScheduler(ctx, s.Cluster)
}

// clusterScheduler returns the scheduler of a cluster, this server's for "".
func (p *Pipeline) clusterScheduler(ctx context.Context, cluster string) (skiff.Scheduler, error) {
	if cluster == "" {
		return p.cfg.Scheduler, nil
	}
	if p.cfg.Clusters == nil {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps on Kubernetes clusters")
	}
	return p.cfg.Clusters.Scheduler(ctx, cluster)
}

// schedulerOfID returns the scheduler an instance ID belongs to.
func (p *Pipeline) schedulerOfID(ctx context.Context, id string) (skiff.Scheduler, error) {
	cluster, _, isCluster := strings.Cut(id, "/")
	if !isCluster {
		cluster = ""
	}
	return p.clusterScheduler(ctx, cluster)
}

// Scheduler is the skiff.Scheduler of every app, for the rest of the
// daemon (admin's ps, logs and runs, the cron scheduler's runs): each call
// goes to the scheduler of the app it is about. nil when this server runs
// no apps.
func (p *Pipeline) Scheduler() skiff.Scheduler {
	if p.cfg.Scheduler == nil {
		return nil
	}
	return p.sched
}

// appScheduler implements skiff.Scheduler over the apps' schedulers.
type appScheduler struct{ p *Pipeline }

var _ skiff.Scheduler = (*appScheduler)(nil)

func (a *appScheduler) Start(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error) {
	s, err := a.p.schedulerFor(ctx, spec.AppID)
	if err != nil {
		return nil, err
	}
	return s.Start(ctx, spec)
}

func (a *appScheduler) WaitReady(ctx context.Context, id string) error {
	s, err := a.p.schedulerOfID(ctx, id)
	if err != nil {
		return err
	}
	return s.WaitReady(ctx, id)
}

func (a *appScheduler) Stop(ctx context.Context, id string, grace time.Duration) error {
	s, err := a.p.schedulerOfID(ctx, id)
	if err != nil {
		return err
	}
	return s.Stop(ctx, id, grace)
}

// Instances lists the app's instances here and on its cluster (both, for
// a moment, while it moves); "" lists every app's on every scheduler. A
// cluster that does not answer is left out of the whole list (and logged).
func (a *appScheduler) Instances(ctx context.Context, appID string) ([]*skiff.Instance, error) {
	p := a.p
	out, err := p.cfg.Scheduler.Instances(ctx, appID)
	if err != nil {
		return nil, err
	}
	var clusters []string
	if appID == "" {
		if list, err := p.cfg.Store.Clusters(ctx); err == nil {
			for _, c := range list {
				clusters = append(clusters, c.Name)
			}
		}
	} else if s, err := p.cfg.Store.Settings(ctx, appID); s != nil && s.Cluster != "" && (err == nil || skiff.ErrorCode(err) == skiff.EINVALID) {
		clusters = []string{s.Cluster}
	}
	for _, c := range clusters {
		s, err := p.clusterScheduler(ctx, c)
		if err == nil {
			var more []*skiff.Instance
			if more, err = s.Instances(ctx, appID); err == nil {
				out = append(out, more...)
				continue
			}
		}
		if appID != "" {
			return nil, err
		}
		p.log.Warn("list the instances of a cluster", "cluster", c, "err", err)
	}
	slices.SortStableFunc(out, func(x, y *skiff.Instance) int {
		if c := strings.Compare(x.Spec.AppName, y.Spec.AppName); c != 0 {
			return c
		}
		if c := strings.Compare(x.Spec.ProcessType, y.Spec.ProcessType); c != 0 {
			return c
		}
		return x.Spec.Index - y.Spec.Index
	})
	return out, nil
}

// RemoveApp removes the app from this server and from its cluster.
func (a *appScheduler) RemoveApp(ctx context.Context, appID string) error {
	s, err := a.p.schedulerFor(ctx, appID)
	if err != nil {
		return err
	}
	if s != a.p.cfg.Scheduler {
		if err := s.RemoveApp(ctx, appID); err != nil {
			return err
		}
	}
	return a.p.cfg.Scheduler.RemoveApp(ctx, appID)
}

func (a *appScheduler) Run(ctx context.Context, req *skiff.RunRequest) (int, error) {
	s, err := a.p.schedulerFor(ctx, req.Spec.AppID)
	if err != nil {
		return -1, err
	}
	return s.Run(ctx, req)
}

func (a *appScheduler) Logs(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	s, err := a.p.schedulerFor(ctx, q.AppID)
	if err != nil {
		return err
	}
	return s.Logs(ctx, q, fn)
}

func (a *appScheduler) AppLog(appID, process, text string) {
	s, err := a.p.schedulerFor(context.Background(), appID)
	if err != nil || s == nil {
		s = a.p.cfg.Scheduler
	}
	s.AppLog(appID, process, text)
}
