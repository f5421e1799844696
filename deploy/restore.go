package deploy

import (
	"context"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// RestoreRoutes gives the router every app's hosts and the web instances
// of its current release that are already up, and is meant to run before
// the daemon serves HTTP. Across a daemon restart the instances keep
// running, so requests then wait in the listen queue for a moment instead
// of meeting an unknown host (404) or an app without instances (503) while
// Reconcile works through the apps one by one. Apps are checked
// concurrently; one whose instances do not pass the router's check within
// the deadline is left to Reconcile.
func (p *Pipeline) RestoreRoutes(ctx context.Context, deadline time.Duration) {
	if p.cfg.Routes == nil {
		return
	}
	start := time.Now()
	apps, err := p.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		p.log.Error("restore routes", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var wg sync.WaitGroup
	for _, app := range apps {
		if err := p.setRoute(ctx, app, nil); err != nil {
			p.log.Error("restore route", "app", app.Name, "err", err)
			continue
		}
		if p.cfg.Scheduler == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.syncBackends(ctx, app)
		}()
	}
	wg.Wait()
	p.log.Info("routes restored", "apps", len(apps), "took", time.Since(start).Round(time.Millisecond))
}
