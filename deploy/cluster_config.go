package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/skiffhq/skiff"
)

// ConfigureCluster implements skiff.Deployer: the changed cluster is
// checked as clusters:add checks a new one (an ingress class needs the
// ingresses grant), stored, its scheduler reopened with it, and every app
// that runs there applied again: an Ingress appears (or goes), the router
// stops (or starts) serving the app.
func (p *Pipeline) ConfigureCluster(ctx context.Context, name string, change func(*skiff.Cluster) error, out io.Writer) error {
	if p.cfg.Clusters == nil || p.cfg.Scheduler == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps, so none on a cluster either")
	}
	c, err := p.cfg.Store.FindCluster(ctx, name)
	if err != nil {
		return err
	}
	next := *c
	if err := change(&next); err != nil {
		return err
	}
	if next.IngressClass != "" {
		if err := skiff.ValidateIngressClass(next.IngressClass); err != nil {
			return err
		}
	}
	if _, _, err := p.cfg.Clusters.Check(ctx, &next); err != nil {
		return err
	}
	if err := p.cfg.Store.UpdateCluster(ctx, &next); err != nil {
		return err
	}
	p.cfg.Clusters.Close(name) // reopened with the change on first use
	apps, err := p.cfg.Store.ListApps(ctx, skiff.AppFilter{})
	if err != nil {
		return err
	}
	var failed []string
	for _, app := range apps {
		if s, err := p.cfg.Store.Settings(ctx, app.ID); s == nil || s.Cluster != name || (err != nil && skiff.ErrorCode(err) != skiff.EINVALID) {
			continue
		}
		if err := p.reapply(ctx, app, "clusters:set", out); err != nil {
			fmt.Fprintf(out, " !     %s: %s\n", app.Name, skiff.ErrorMessage(err))
			failed = append(failed, app.Name)
		}
	}
	if len(failed) > 0 {
		return skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s is changed, but %s did not take the change yet (the reasons are above); a deploy or ps:restart of each applies it",
			name, strings.Join(failed, ", "))
	}
	return nil
}

// reapply applies the app's current release again where it runs, under
// its lock: what a change outside the release (its cluster's settings,
// its domains on a cluster that serves them) needs.
func (p *Pipeline) reapply(ctx context.Context, app *skiff.App, action string, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, action)
	if err != nil {
		return err
	}
	defer unlock()
	step(out, "Applying %s again", app.Name)
	return p.convergeCurrent(ctx, app, rollout{}, out)
}

// hosts are the names the app answers on: <app>.<base domain> and its
// domains.
func (p *Pipeline) hosts(ctx context.Context, app *skiff.App) ([]string, error) {
	domains, err := p.cfg.Store.Domains(ctx, app.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	if p.cfg.BaseDomain != "" {
		out = append(out, app.Name+"."+p.cfg.BaseDomain)
	}
	return append(out, domains...), nil
}

// selfRouted reports whether rs serves the app's traffic itself (an
// Ingress), so that skiff's router has no backends for it.
func selfRouted(rs skiff.Scheduler) bool {
	sr, ok := rs.(skiff.SelfRouting)
	return ok && sr.RoutesTraffic()
}
