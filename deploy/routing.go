package deploy

import (
	"context"
	"io"
	"strings"

	"github.com/skiffhq/skiff"
)

// AddDomain implements skiff.Deployer.
func (p *Pipeline) AddDomain(ctx context.Context, app *skiff.App, domain string) (string, error) {
	host, err := skiff.ValidateDomain(domain)
	if err != nil {
		return "", err
	}
	base := p.cfg.BaseDomain
	if base != "" && (host == base || strings.HasSuffix(host, "."+base) || skiff.DomainCovers(host, base)) {
		return "", skiff.Errorf(skiff.EINVALID, "%s is under the server's own domain %s, whose names belong to apps by their names; rename the app instead", host, base)
	}
	if strings.HasPrefix(host, "*.") && !skiff.ActorFrom(ctx).Admin() {
		return "", skiff.Errorf(skiff.EUNAUTHORIZED, "only admins may add wildcard domains")
	}
	unlock, err := p.locks.lock(ctx, app, "domains:add")
	if err != nil {
		return "", err
	}
	defer unlock()
	domains, err := p.cfg.Store.Domains(ctx, app.ID)
	if err != nil {
		return "", err
	}
	had := false
	for _, d := range domains {
		had = had || d == host
	}
	if err := p.cfg.Store.AddDomain(ctx, app.ID, host); err != nil {
		return "", err
	}
	if err := p.setRoute(ctx, app, nil); err != nil {
		// The router refused it (another app's host): take it back.
		if !had {
			if uerr := p.cfg.Store.RemoveDomain(context.WithoutCancel(ctx), app.ID, host); uerr != nil {
				p.log.Error("undo domains:add", "app", app.Name, "host", host, "err", uerr)
			}
		}
		return "", err
	}
	if err := p.reapplyHosts(ctx, app); err != nil {
		if !had {
			if uerr := p.cfg.Store.RemoveDomain(context.WithoutCancel(ctx), app.ID, host); uerr != nil {
				p.log.Error("undo domains:add", "app", app.Name, "host", host, "err", uerr)
			}
			_ = p.setRoute(context.WithoutCancel(ctx), app, nil)
		}
		return "", err
	}
	return host, nil
}

// reapplyHosts applies the current release of an app whose cluster serves
// its hosts (an Ingress) again, after they changed; the caller holds the
// app's lock.
func (p *Pipeline) reapplyHosts(ctx context.Context, app *skiff.App) error {
	if !p.RunsElsewhere(ctx, app.ID) {
		return nil
	}
	s, err := p.schedulerFor(ctx, app.ID)
	if err != nil {
		return err
	}
	if !selfRouted(s) {
		return nil
	}
	if err := p.convergeCurrent(ctx, app, rollout{}, io.Discard); err != nil {
		return skiff.Errorf(skiff.ErrorCode(err), "the cluster's Ingress for %s could not be updated: %s", app.Name, skiff.ErrorMessage(err))
	}
	return nil
}

// RemoveDomain implements skiff.Deployer.
func (p *Pipeline) RemoveDomain(ctx context.Context, app *skiff.App, domain string) (string, error) {
	host, err := skiff.ValidateDomain(domain)
	if err != nil {
		return "", err
	}
	unlock, err := p.locks.lock(ctx, app, "domains:remove")
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := p.cfg.Store.RemoveDomain(ctx, app.ID, host); err != nil {
		return "", err
	}
	if err := p.setRoute(ctx, app, nil); err != nil {
		if uerr := p.cfg.Store.AddDomain(context.WithoutCancel(ctx), app.ID, host); uerr != nil {
			p.log.Error("undo domains:remove", "app", app.Name, "host", host, "err", uerr)
		}
		return "", err
	}
	if err := p.reapplyHosts(ctx, app); err != nil {
		// The domain is gone here; the cluster's Ingress still names it
		// until the app's next deploy applies it.
		return host, err
	}
	return host, nil
}

// SetDeployBranch implements skiff.Deployer.
func (p *Pipeline) SetDeployBranch(ctx context.Context, app *skiff.App, branch string) error {
	if err := skiff.ValidateBranchName(branch); err != nil {
		return err
	}
	unlock, err := p.locks.lock(ctx, app, "git:set")
	if err != nil {
		return err
	}
	defer unlock()
	return p.cfg.Store.SetDeployBranch(ctx, app.ID, branch)
}

// SetCertificate implements skiff.Deployer.
func (p *Pipeline) SetCertificate(ctx context.Context, app *skiff.App, bundle []byte) error {
	return p.certificate(ctx, app, "certs:add", func() error { return p.cfg.Routes.SetCertificate(app.ID, bundle) })
}

// RemoveCertificate implements skiff.Deployer.
func (p *Pipeline) RemoveCertificate(ctx context.Context, app *skiff.App) error {
	return p.certificate(ctx, app, "certs:remove", func() error { return p.cfg.Routes.RemoveCertificate(app.ID) })
}

func (p *Pipeline) certificate(ctx context.Context, app *skiff.App, action string, change func() error) error {
	if p.cfg.Routes == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server has no router")
	}
	unlock, err := p.locks.lock(ctx, app, action)
	if err != nil {
		return err
	}
	defer unlock()
	if err := change(); err != nil {
		return err
	}
	// The certificate is in place; a missing audit event is the server's
	// problem, not the user's.
	if err := p.cfg.Store.RecordEvent(context.WithoutCancel(ctx), &skiff.Event{AppID: app.ID, App: app.Name, Action: action}); err != nil {
		p.log.Error("record event", "app", app.Name, "action", action, "err", err)
	}
	return nil
}
