package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/skiffhq/skiff/build"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/services"
	"github.com/skiffhq/skiff/volume"
)

// teardown removes what skiff put on the host outside its data directory:
// it stops every app instance, build and service, and removes their cgroups, runc
// state, veths, firewall table and the pool's route. It sets nothing up on
// its way (IPv4 forwarding stays as it is). The data directory stays
// (delete it yourself to remove the apps for good). The daemon must not be
// running.
func teardown(dataDir string, args []string) int {
	fs := flag.NewFlagSet("teardown", flag.ContinueOnError)
	fs.StringVar(&dataDir, "data", dataDir, "the data directory, as given to skiff serve")
	prefix := fs.String("resource-prefix", envOr("SKIFF_RESOURCE_PREFIX", "skiff"), "as given to skiff serve")
	pool := fs.String("network-pool", envOr("SKIFF_NETWORK_POOL", "10.213.0.0/16"), "as given to skiff serve")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := checkResourcePrefix(*prefix); err != nil {
		fmt.Fprintf(os.Stderr, " !     %v\n", err)
		return 2
	}
	if err := runTeardown(dataDir, *prefix, *pool); err != nil {
		fmt.Fprintf(os.Stderr, " !     %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "-----> Stopped every app instance, build and service, and removed skiff's cgroups, runc state, veths, firewall rules and route (%s); the data in %s stays\n", *prefix, dataDir)
	return 0
}

func runTeardown(dataDir, prefix, poolText string) error {
	if c, err := net.DialTimeout("unix", filepath.Join(dataDir, "control.sock"), time.Second); err == nil { //nolint:gosec // the daemon's own socket, to see whether it runs
		c.Close()
		return fmt.Errorf("skiff serve is running with the data directory %s: stop it first", dataDir)
	}
	if os.Geteuid() != 0 {
		return errors.New("teardown changes the host: run it as root")
	}
	pool, err := netip.ParsePrefix(poolText)
	if err != nil {
		return fmt.Errorf("--network-pool: %w", err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	names := namesFor(prefix)
	var errs []error
	for _, side := range []struct{ state, cgroup, bundles string }{
		{names.runcState, names.cgroup, filepath.Join(dataDir, "instances")},
		{names.buildRuncState, names.buildCgroup, filepath.Join(dataDir, "tmp", "builds")},
		{names.serviceRuncState, names.serviceCgroup, filepath.Join(dataDir, "services", "instances")},
	} {
		// No Network: the veths go with RemoveNetwork below, and making
		// one would install the rules teardown removes.
		r, err := container.New(ctx, container.Config{StateDir: side.state, CgroupParent: side.cgroup, Log: log})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, r.Teardown(ctx, side.bundles), r.Close())
	}
	// Builds cut short leave their cache's overlay mounted below their
	// scratch directories (runc's bundles there are gone above).
	errs = append(errs, build.RemoveScratch(dataDir))
	// The services' disks (loop-mounted on their volumes) once nothing
	// runs on them; their images stay in the data directory.
	errs = append(errs, services.TeardownDisks(filepath.Join(dataDir, "volumes")))
	nw := container.NetworkConfig{Pool: pool, LinkPrefix: names.vethPrefix, Table: names.table, LockFile: names.lockFile}
	errs = append(errs, container.RemoveNetwork(nw), os.RemoveAll(filepath.Dir(names.runcState)))
	if err := os.Remove(names.lockFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, runtime.UnmountShare(dataDir), runtime.UnmountShare(filepath.Join(dataDir, "services")))
	// Volumes' file systems: their images stay, the next daemon mounts them.
	errs = append(errs, volume.UnmountAll(filepath.Join(dataDir, "volumes")))
	// The instances' records are gone with their containers; the
	// services' data stays, and the next start runs them again.
	errs = append(errs, os.RemoveAll(filepath.Join(dataDir, "instances")), os.RemoveAll(filepath.Join(dataDir, "services", "instances")))
	return errors.Join(errs...)
}
