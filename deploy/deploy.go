// Package deploy runs everything that changes what an app is or runs:
// creating, renaming and destroying apps; the push pipeline that the
// pre-receive hook hands each push to (build, release, start, health-gated
// switch, drain); config changes, scaling, restarts and rollbacks, which
// take the same start → switch → drain path; and the boot-time reconciler
// that converges what runs to what SQLite says should. It talks to the
// other packages only through the root package's interfaces, and
// serializes the operations on each app.
package deploy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// Store is the state the pipeline reads and writes.
type Store interface {
	skiff.AppService
	skiff.PushService
	skiff.ReleaseService
	skiff.ConfigService
	skiff.DomainService
	skiff.SettingsService
	skiff.EventService
	skiff.VolumeService
	skiff.ClusterService
	// FailRunningBuilds marks the builds a daemon restart interrupted.
	FailRunningBuilds(ctx context.Context, reason string) (int, error)
	// CronStates are the app's cron jobs' states (which are suspended).
	CronStates(ctx context.Context, appID string) ([]*skiff.CronState, error)
	// AppLinks lists the services the app is linked to.
	AppLinks(ctx context.Context, appID string) ([]*skiff.ServiceLink, error)
}

// Config holds the services the pipeline drives. Builder, Scheduler and
// Routes may be nil, for a daemon that only records pushes (tests of the
// git and SSH layers).
type Config struct {
	Store   Store
	Repos   skiff.Repos
	Builder skiff.Builder
	// Scheduler runs apps on this server; Clusters, when set, opens the
	// schedulers of the clusters apps may run on instead.
	Scheduler skiff.Scheduler
	Clusters  skiff.Clusters
	Routes    skiff.Routes
	Volumes   skiff.Volumes // the volumes; nil: storage cannot be made
	// VolumeSize is a new volume's size when none is asked for; default
	// 1 GiB. StorageBudget caps the sum of all volumes' sizes; 0: only the
	// disk does.
	VolumeSize, StorageBudget int64
	Log                       *slog.Logger
	// OnRelease is told of each release that became current (the cron
	// scheduler re-reads the app's jobs).
	OnRelease func(appID string)

	BaseDomain   string        // apps answer at <name>.<BaseDomain>
	HTTPPort     int           // the router's HTTP port: app URLs name it unless it is 80 (or 0)
	ReadyTimeout time.Duration // for a new web instance to accept connections; default 60 s
	StopGrace    time.Duration // SIGTERM to SIGKILL for old instances; default 30 s
	KeepReleases int           // releases per app whose images are kept; default skiff.DefaultKeepReleases
	// DetachedReapAfter is how long a detached run that ended stays
	// listed, with its exit status, before Watch removes it; default 1 min.
	DetachedReapAfter time.Duration
	// ImageGC removes images no release keeps; nil: never collect.
	ImageGC func(ctx context.Context, keep []string) error
	// ReleaseImages lists the images to keep: those of each app's newest n releases.
	ReleaseImages func(ctx context.Context, n int) ([]string, error)
}

// Pipeline implements skiff.Deployer.
type Pipeline struct {
	cfg   Config
	log   *slog.Logger
	locks appLocks
	sched *appScheduler // every app's scheduler, by app
	// backends follows the ready web processes of apps on clusters.
	backends backendSync
	// gc is held for reading by builds until their image is released, and
	// for writing by the image collector.
	gc sync.RWMutex
	// storageMu makes budget checks and the volumes they admit one step.
	storageMu sync.Mutex
}

var _ skiff.Deployer = (*Pipeline)(nil)

// New returns a pipeline over the services.
func New(cfg Config) *Pipeline {
	if cfg.VolumeSize == 0 {
		cfg.VolumeSize = 1 << 30
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 30 * time.Second
	}
	if cfg.KeepReleases == 0 {
		cfg.KeepReleases = skiff.DefaultKeepReleases
	}
	if cfg.DetachedReapAfter == 0 {
		cfg.DetachedReapAfter = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, log: cfg.Log, locks: appLocks{held: map[string]*lockHolder{}}}
	p.sched = &appScheduler{p}
	p.backends.running = map[string]bool{}
	return p
}

// CreateApp stores the app, creates its repository and its route; if the
// repository cannot be made, the app is removed again so nothing half-made
// remains.
func (p *Pipeline) CreateApp(ctx context.Context, name string) (*skiff.App, error) {
	app := &skiff.App{Name: name}
	if err := p.cfg.Store.CreateApp(ctx, app); err != nil {
		return nil, err
	}
	if err := p.cfg.Repos.InitRepo(ctx, app.ID); err != nil {
		if derr := p.cfg.Store.DeleteApp(context.WithoutCancel(ctx), app.ID); derr != nil {
			p.log.Error("undo app create", "app", name, "err", derr)
		}
		return nil, fmt.Errorf("create repository of %s: %w", name, err)
	}
	if err := p.setRoute(ctx, app, nil); err != nil {
		p.log.Error("route new app", "app", name, "err", err)
	}
	return app, nil
}

// RenameApp renames the app; nothing on disk moves (it is keyed by id), and
// the route follows the new name at once.
func (p *Pipeline) RenameApp(ctx context.Context, app *skiff.App, newName string) error {
	unlock, err := p.locks.lock(ctx, app, "rename")
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.cfg.Store.RenameApp(ctx, app.ID, newName); err != nil {
		return err
	}
	renamed := *app
	renamed.Name = newName
	return p.setRoute(ctx, &renamed, nil)
}

// DestroyApp stops the app's traffic and instances, removes its record,
// then its repository, build cache and logs, and with volumes the volumes
// only it mounted. The record goes before the files: once it is gone
// nobody can push to or fetch the app, and a leftover directory is only
// disk space.
func (p *Pipeline) DestroyApp(ctx context.Context, app *skiff.App, volumes bool, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "destroy")
	if err != nil {
		return err
	}
	defer unlock()
	mounts, err := p.cfg.Store.Mounts(ctx, app.ID)
	if err != nil {
		return err
	}
	if p.cfg.Routes != nil {
		p.cfg.Routes.RemoveApp(app.ID)
		if err := p.cfg.Routes.RemoveCertificate(app.ID); err != nil {
			p.log.Error("remove certificate", "app", app.Name, "err", err)
		}
	}
	if p.cfg.Scheduler != nil {
		if err := p.sched.RemoveApp(ctx, app.ID); err != nil {
			return fmt.Errorf("stop the instances of %s: %w", app.Name, err)
		}
	}
	if err := p.cfg.Store.DeleteApp(ctx, app.ID); err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	if p.cfg.Repos != nil {
		if err := p.cfg.Repos.RemoveRepo(bg, app.ID); err != nil {
			p.log.Error("remove repository", "app", app.Name, "id", app.ID, "err", err)
		}
	}
	if p.cfg.Builder != nil {
		p.cfg.Builder.Cancel(app.ID)
		if err := p.cfg.Builder.PurgeCache(bg, app.ID); err != nil {
			p.log.Error("remove build cache", "app", app.Name, "err", err)
		}
	}
	p.collectGarbage(bg)
	if len(mounts) > 0 && !volumes {
		var names []string
		for _, m := range mounts {
			names = append(names, m.Volume)
		}
		names = slices.Compact(slices.Sorted(slices.Values(names)))
		detail(out, "Kept storage %s with its files (storage:destroy removes it; apps:destroy --volumes would have)", strings.Join(names, ", "))
	} else if volumes {
		removed, kept := p.destroyAppVolumes(bg, mounts)
		if len(removed) > 0 {
			detail(out, "Removed storage %s", strings.Join(removed, ", "))
		}
		if len(kept) > 0 {
			detail(out, "Kept storage %s: other apps mount it", strings.Join(kept, ", "))
		}
	}
	if p.cfg.OnRelease != nil {
		p.cfg.OnRelease(app.ID)
	}
	return nil
}

// collectGarbage removes images that no release keeps any more. While a
// build is in flight it does nothing: the next push collects.
func (p *Pipeline) collectGarbage(ctx context.Context) {
	if p.cfg.ImageGC == nil || p.cfg.ReleaseImages == nil || !p.gc.TryLock() {
		return
	}
	defer p.gc.Unlock()
	keep, err := p.cfg.ReleaseImages(ctx, p.cfg.KeepReleases)
	if err == nil {
		err = p.cfg.ImageGC(ctx, keep)
	}
	if err != nil {
		p.log.Error("image garbage collection", "err", err)
	}
}
