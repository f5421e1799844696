package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/build"
	"github.com/skiffhq/skiff/services"
	"github.com/skiffhq/skiff/store"
)

// serviceImages makes the services' Debian images with the CNB platform's
// debootstrap machinery, from the mirror and cache builder:create uses.
type serviceImages struct {
	platform *build.Platform
	opts     build.ServiceImageOptions
}

func (s *serviceImages) CreateDebianImages(ctx context.Context, req *skiff.DebianImageRequest, out io.Writer) (*skiff.DebianImages, error) {
	return s.platform.CreateServiceImages(ctx, req, s.opts, out)
}

// openServices starts the backing services' manager over the platform.
func openServices(ctx context.Context, cfg *Config, pl *platform, db *store.DB, deployer skiff.Deployer, log *slog.Logger) (*services.Manager, error) {
	m, err := services.New(ctx, services.Config{
		DataDir: filepath.Join(cfg.DataDir, "services"), Store: db, Apps: db, Config: db, Deployer: deployer,
		Runtime: pl.serviceRuntime, Network: pl.network, IDShift: pl.serviceRunc.IDMap().HostID,
		Volumes: pl.volumes, VolumeStore: db,
		Images: &serviceImages{platform: pl.builder, opts: build.ServiceImageOptions{Mirror: cfg.DebianMirror, CacheDir: cfg.DebootstrapCache}},
		Log:    log.With("component", "services"),
	})
	if err != nil {
		return nil, err
	}
	pl.serviceImages = func(ctx context.Context) []string {
		all, err := db.ListServices(ctx)
		if err != nil {
			return nil
		}
		var out []string
		for _, s := range all {
			out = append(out, s.Image)
		}
		return out
	}
	return m, nil
}
