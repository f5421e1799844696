package deploy

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/skiffhq/skiff"
)

func seconds(s string) time.Duration {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n * float64(time.Second))
}

// appRoute is how the router should serve the app, from its settings.
func (p *Pipeline) appRoute(ctx context.Context, app *skiff.App) (skiff.AppRoute, error) {
	domains, err := p.cfg.Store.Domains(ctx, app.ID)
	if err != nil {
		return skiff.AppRoute{}, err
	}
	s, err := p.cfg.Store.Settings(ctx, app.ID)
	if err != nil {
		return skiff.AppRoute{}, err
	}
	maxBody, _ := strconv.ParseInt(s[skiff.SettingMaxBody], 10, 64)
	health := skiff.HealthCheck{
		Path:     s[skiff.SettingHealthPath],
		Timeout:  seconds(s[skiff.SettingHealthTimeout]),
		Deadline: seconds(s[skiff.SettingHealthDeadline]),
	}
	// checks:set wins; else app.json's startup check of web.
	if health.Path == "" && s[skiff.SettingAppJSONCheck] != "" {
		json.Unmarshal([]byte(s[skiff.SettingAppJSONCheck]), &health)
	}
	return skiff.AppRoute{
		AppID: app.ID, Name: app.Name, Domains: domains,
		Health: health,
		Maintenance:     s[skiff.SettingMaintenance] == "on",
		MaintenancePage: s[skiff.SettingMaintenancePage],
		ACME:            s[skiff.SettingACME] == "on",
		HSTS:            s[skiff.SettingHSTS] == "on",
		MaxBodyBytes:    maxBody,
		ResponseTimeout: seconds(s[skiff.SettingResponseTimeout]),
		DrainTimeout:    seconds(s[skiff.SettingWaitToRetire]),
	}, nil
}

// setRoute gives the router the app's current route (hosts and policy; its
// backends change only through a deploy).
func (p *Pipeline) setRoute(ctx context.Context, app *skiff.App) error {
	if p.cfg.Routes == nil {
		return nil
	}
	route, err := p.appRoute(ctx, app)
	if err != nil {
		return err
	}
	return p.cfg.Routes.SetApp(route)
}

// UpdateRoute re-reads the app's domains and settings into the router;
// domains:*, maintenance:*, checks:set and certs:auto call it after writing.
func (p *Pipeline) UpdateRoute(ctx context.Context, app *skiff.App) error {
	return p.setRoute(ctx, app)
}

func buildpacksSetting(s map[string]string) []string {
	var bps []string
	if v := s[skiff.SettingBuildpacks]; v != "" {
		json.Unmarshal([]byte(v), &bps)
	}
	return bps
}

// readAppJSON applies the pushed commit's app.json: its startup check of
// web becomes the app's health check (unless checks:set set one). A
// malformed app.json fails the push, saying what is wrong.
func (p *Pipeline) readAppJSON(ctx context.Context, app *skiff.App, commit string, gitEnv []string) error {
	data, err := p.cfg.Repos.ReadFile(ctx, app.ID, commit, "app.json", gitEnv, skiff.MaxAppJSON)
	value := ""
	switch {
	case skiff.ErrorCode(err) == skiff.ENOTFOUND:
	case err != nil:
		return err
	default:
		a, err := skiff.ParseAppJSON(data)
		if err != nil {
			return err
		}
		if hc, ok := a.WebCheck(); ok {
			b, _ := json.Marshal(hc)
			value = string(b)
		}
	}
	settings, err := p.cfg.Store.Settings(ctx, app.ID)
	if err != nil {
		return err
	}
	if settings[skiff.SettingAppJSONCheck] == value {
		return nil
	}
	return p.cfg.Store.SetSettings(ctx, app.ID, "app.json", map[string]string{skiff.SettingAppJSONCheck: value})
}
