package deploy

import (
	"context"

	"github.com/skiffhq/skiff"
)

// settings reads the app's settings for the daemon's own use (routes,
// rollouts): a stored value that does not parse is reported in the server
// log and the app's log, and its key takes the default, so that the app
// keeps serving; the commands that show or change settings report it to
// the user.
func (p *Pipeline) settings(ctx context.Context, app *skiff.App) (*skiff.Settings, error) {
	s, err := p.cfg.Store.Settings(ctx, app.ID)
	if err != nil && s != nil && skiff.ErrorCode(err) == skiff.EINVALID {
		p.log.Error("app settings", "app", app.Name, "err", err)
		p.appLog(app, "%s", skiff.ErrorMessage(err))
		return s, nil
	}
	return s, err
}

// appRoute is how the router should serve the app: its hosts, and the
// policy its settings give.
func (p *Pipeline) appRoute(ctx context.Context, app *skiff.App, s *skiff.Settings) (skiff.AppRoute, error) {
	domains, err := p.cfg.Store.Domains(ctx, app.ID)
	if err != nil {
		return skiff.AppRoute{}, err
	}
	if s == nil {
		if s, err = p.settings(ctx, app); err != nil {
			return skiff.AppRoute{}, err
		}
	}
	return s.Route(app, domains), nil
}

// setRoute gives the router the app's current route (hosts and policy; its
// backends change only through a deploy). s is the app's settings, nil to
// read them.
func (p *Pipeline) setRoute(ctx context.Context, app *skiff.App, s *skiff.Settings) error {
	if p.cfg.Routes == nil {
		return nil
	}
	route, err := p.appRoute(ctx, app, s)
	if err != nil {
		return err
	}
	return p.cfg.Routes.SetApp(route)
}

// UpdateSettings implements skiff.Deployer.
func (p *Pipeline) UpdateSettings(ctx context.Context, app *skiff.App, action string, update func(*skiff.Settings) error) (*skiff.Settings, error) {
	unlock, err := p.locks.lock(ctx, app, action)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return p.changeSettings(ctx, app, action, update)
}

// changeSettings is UpdateSettings under the lock the caller holds. A
// stored value that does not parse is replaced by the change (at its
// default, unless update sets it).
func (p *Pipeline) changeSettings(ctx context.Context, app *skiff.App, action string, update func(*skiff.Settings) error) (*skiff.Settings, error) {
	old, err := p.cfg.Store.Settings(ctx, app.ID)
	if err != nil && (old == nil || skiff.ErrorCode(err) != skiff.EINVALID) {
		return nil, err
	}
	next := old.Clone()
	if err := update(next); err != nil {
		return nil, err
	}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	if err := p.cfg.Store.SetSettings(ctx, app.ID, action, next); err != nil {
		return nil, err
	}
	if err := p.setRoute(ctx, app, next); err != nil {
		// The router refused the new route: the old one stays, and so do
		// the settings that made it.
		if uerr := p.cfg.Store.SetSettings(context.WithoutCancel(ctx), app.ID, action+" undone", old); uerr != nil {
			p.log.Error("undo settings change", "app", app.Name, "action", action, "err", uerr)
		}
		return nil, err
	}
	return next, nil
}

// readAppJSON reads the pushed commit's app.json (nil when it has none)
// and applies its startup check of web: the app's health check (unless
// checks:set set one). Its scripts and cron jobs go into the release. A
// malformed app.json fails the push, saying what is wrong.
func (p *Pipeline) readAppJSON(ctx context.Context, app *skiff.App, commit string, gitEnv []string) (*skiff.AppJSON, error) {
	data, err := p.cfg.Repos.ReadFile(ctx, app.ID, commit, "app.json", gitEnv, skiff.MaxAppJSON)
	var check *skiff.HealthCheck
	var a *skiff.AppJSON
	switch {
	case skiff.ErrorCode(err) == skiff.ENOTFOUND:
	case err != nil:
		return nil, err
	default:
		if a, err = skiff.ParseAppJSON(data); err != nil {
			return nil, err
		}
		if hc, ok := a.WebCheck(); ok {
			check = &hc
		}
	}
	s, err := p.settings(ctx, app)
	if err != nil {
		return nil, err
	}
	if same(s.AppJSONCheck, check) {
		return a, nil
	}
	_, err = p.changeSettings(ctx, app, "app.json", func(s *skiff.Settings) error {
		s.AppJSONCheck = check
		return nil
	})
	return a, err
}

func same(a, b *skiff.HealthCheck) bool { return a == b || a != nil && b != nil && *a == *b }
