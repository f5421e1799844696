// Package deploy runs everything that changes what an app is: creating,
// renaming and destroying apps, and the push pipeline that the pre-receive
// hook hands each push to. It talks to the other packages only through the
// root package's interfaces, and serializes the operations on each app.
package deploy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/skiffhq/skiff"
)

// Config holds the services the pipeline drives.
type Config struct {
	Apps   skiff.AppService
	Pushes skiff.PushService
	Events skiff.EventService
	Repos  skiff.Repos
	Log    *slog.Logger
}

// Pipeline implements skiff.Deployer.
type Pipeline struct {
	cfg   Config
	locks appLocks
}

var _ skiff.Deployer = (*Pipeline)(nil)

// New returns a pipeline over the services.
func New(cfg Config) *Pipeline {
	return &Pipeline{cfg: cfg, locks: appLocks{held: map[string]*lockHolder{}}}
}

// CreateApp stores the app and creates its repository; if the repository
// cannot be made, the app is removed again so nothing half-made remains.
func (p *Pipeline) CreateApp(ctx context.Context, name string) (*skiff.App, error) {
	app := &skiff.App{Name: name}
	if err := p.cfg.Apps.CreateApp(ctx, app); err != nil {
		return nil, err
	}
	if err := p.cfg.Repos.InitRepo(ctx, app.ID); err != nil {
		if derr := p.cfg.Apps.DeleteApp(context.WithoutCancel(ctx), app.ID); derr != nil {
			p.cfg.Log.Error("undo app create", "app", name, "err", derr)
		}
		return nil, fmt.Errorf("create repository of %s: %w", name, err)
	}
	return app, nil
}

// RenameApp renames the app; nothing on disk moves (it is keyed by id).
func (p *Pipeline) RenameApp(ctx context.Context, app *skiff.App, newName string) error {
	unlock, err := p.locks.lock(ctx, app, "rename")
	if err != nil {
		return err
	}
	defer unlock()
	return p.cfg.Apps.RenameApp(ctx, app.ID, newName)
}

// DestroyApp removes the app's record, then its repository. The record goes
// first: once it is gone nobody can push to or fetch the app, and a
// leftover directory is only disk space.
func (p *Pipeline) DestroyApp(ctx context.Context, app *skiff.App) error {
	unlock, err := p.locks.lock(ctx, app, "destroy")
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.cfg.Apps.DeleteApp(ctx, app.ID); err != nil {
		return err
	}
	if err := p.cfg.Repos.RemoveRepo(context.WithoutCancel(ctx), app.ID); err != nil {
		p.cfg.Log.Error("remove repository", "app", app.Name, "id", app.ID, "err", err)
	}
	return nil
}
