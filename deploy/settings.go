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
	return skiff.AppRoute{
		AppID: app.ID, Name: app.Name, Domains: domains,
		Health: skiff.HealthCheck{
			Path:     s[skiff.SettingHealthPath],
			Timeout:  seconds(s[skiff.SettingHealthTimeout]),
			Deadline: seconds(s[skiff.SettingHealthDeadline]),
		},
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
