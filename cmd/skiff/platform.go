package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"

	"github.com/skiffhq/skiff/build"
	"github.com/skiffhq/skiff/buildpacks"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/egress"
	"github.com/skiffhq/skiff/internal/imagestore"
	"github.com/skiffhq/skiff/internal/layer"
	"github.com/skiffhq/skiff/router"
	"github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/volume"
)

// platform is what builds and runs apps: the image store, the network and
// runc sandboxes, the runtime, the CNB platform and the router.
type platform struct {
	images  *imagestore.Store
	network *container.Network
	runc    *container.Runc
	runtime *runtime.Runtime
	builder *build.Platform
	router  *router.Router
	volumes *volume.Store
	// The backing services' own runc and runtime (their instances are
	// nobody's app), and the images their layers must be kept for.
	serviceRunc    *container.Runc
	serviceRuntime *runtime.Runtime
	serviceImages  func(ctx context.Context) []string
}

// hostNames are the names of skiff's resources on the host, derived from
// --resource-prefix so that two daemons (say, tests) can share a host.
type hostNames struct {
	table, vethPrefix, cgroup, buildCgroup, runcState, buildRuncState, lockFile string
	serviceCgroup, serviceRuncState                                             string
}

var resourcePrefixRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,14}$`)

// checkResourcePrefix refuses a prefix that is not a plain name: it becomes
// paths under /run and /sys/fs/cgroup, which teardown removes. One ending in
// -builds would be another daemon's build cgroup.
func checkResourcePrefix(prefix string) error {
	if !resourcePrefixRe.MatchString(prefix) || strings.HasSuffix(prefix, "-builds") || strings.HasSuffix(prefix, "-services") {
		return fmt.Errorf("--resource-prefix %q: use up to 15 lower-case letters, digits and hyphens, starting with a letter and not ending in -builds or -services", prefix)
	}
	return nil
}

// namesFor derives the host's names from the resource prefix. The veth
// prefix is matched as a wildcard by the firewall rules and by teardown, so
// no daemon's may start with another's: the default daemon's is "sk" (as it
// always was, so running instances keep theirs across an upgrade), every
// other's "v" and 5 hex digits of a hash of its prefix: all the same length,
// none starting with "sk". container.NewNetwork refuses one that another
// table on the host already matches.
func namesFor(prefix string) hostNames {
	veth := "sk"
	if prefix != "skiff" {
		h := sha256.Sum256([]byte(prefix))
		veth = "v" + hex.EncodeToString(h[:])[:5]
	}
	return hostNames{
		table: prefix, vethPrefix: veth, cgroup: prefix, buildCgroup: prefix + "-builds",
		runcState: "/run/" + prefix + "/runc", buildRuncState: "/run/" + prefix + "/runc-builds",
		lockFile:      "/run/" + prefix + "-network.lock",
		serviceCgroup: prefix + "-services", serviceRuncState: "/run/" + prefix + "/runc-services",
	}
}

func openPlatform(ctx context.Context, cfg *Config, log *slog.Logger) (*platform, error) {
	p := &platform{}
	acme := router.ACMEConfig{CA: cfg.ACMECA, Email: cfg.ACMEEmail, HTTPPort: cfg.publicHTTPPort, TLSPort: cfg.publicTLSPort}
	if cfg.ACMECARoots != "" {
		pem, err := os.ReadFile(cfg.ACMECARoots)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-roots: %w", err)
		}
		acme.TrustedRoots = x509.NewCertPool()
		if !acme.TrustedRoots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--acme-ca-roots: no certificate in %s", cfg.ACMECARoots)
		}
	}
	var err error
	if p.router, err = router.New(router.Config{
		BaseDomain:     cfg.Domain,
		LogDir:         filepath.Join(cfg.DataDir, "logs", "router"),
		TLSDir:         filepath.Join(cfg.DataDir, "tls"),
		HTTPSPort:      cfg.publicHTTPSPort,
		ACME:           acme,
		TrustedProxies: cfg.TrustedProxies,
	}, log.With("component", "router")); err != nil {
		return nil, err
	}
	if cfg.GitOnly {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("skiff serve runs apps in runc sandboxes and needs root: run it with sudo (or pass --git-only to only receive pushes)")
	}
	names := namesFor(cfg.ResourcePrefix)
	if p.images, err = imagestore.Open(filepath.Join(cfg.DataDir, "images")); err != nil {
		return nil, err
	}
	pool, err := netip.ParsePrefix(cfg.NetworkPool)
	if err != nil {
		return nil, fmt.Errorf("--network-pool: %w", err)
	}
	if p.network, err = container.NewNetwork(container.NetworkConfig{Pool: pool, LinkPrefix: names.vethPrefix, Table: names.table, LockFile: names.lockFile},
		log.With("component", "network")); err != nil {
		return nil, fmt.Errorf("set up the app network: %w", err)
	}
	if p.runc, err = container.New(ctx, container.Config{StateDir: names.runcState, CgroupParent: names.cgroup, Network: p.network,
		Log: log.With("component", "runc")}); err != nil {
		return nil, err
	}
	// What this host does not allow, said once at start (a server that is
	// itself a container, say).
	for _, d := range p.runc.Degraded() {
		log.Warn("degraded: "+d, "component", "runc")
	}
	layers, err := layer.NewStore(filepath.Join(cfg.DataDir, "layers"), layer.Options{IDShift: int(p.runc.IDMap().HostID)}, log.With("component", "layers"))
	if err != nil {
		return nil, err
	}
	initBin, err := besideSkiff("skiff-init")
	if err != nil {
		return nil, err
	}
	if p.volumes, err = volume.New(volume.Config{Dir: filepath.Join(cfg.DataDir, "volumes"), Log: log.With("component", "volume")}); err != nil {
		return nil, err
	}
	p.volumes.MountAll(ctx) // before any instance that mounts one starts
	if p.runtime, err = runtime.New(ctx, runtime.Config{DataDir: cfg.DataDir, ImageDir: filepath.Join(cfg.DataDir, "images"),
		Layers: layers, Runc: p.runc, Init: initBin, VolumePath: p.volumes.Path, Log: log.With("component", "runtime")}); err != nil {
		return nil, err
	}
	if p.serviceRunc, err = container.New(ctx, container.Config{StateDir: names.serviceRuncState, CgroupParent: names.serviceCgroup, Network: p.network,
		Log: log.With("component", "runc-services")}); err != nil {
		return nil, err
	}
	if p.serviceRuntime, err = runtime.New(ctx, runtime.Config{DataDir: filepath.Join(cfg.DataDir, "services"), ImageDir: filepath.Join(cfg.DataDir, "images"),
		Layers: layers, Runc: p.serviceRunc, Init: initBin, VolumePath: p.volumes.Path, Log: log.With("component", "services-runtime")}); err != nil {
		return nil, err
	}
	// Registry pulls reach public addresses and what an admin allowed,
	// never the pool's instances (nor the host: egress checks that).
	pulls, err := egress.New(egress.Config{Allow: cfg.AllowRegistry, Deny: []netip.Prefix{pool}})
	if err != nil {
		return nil, err
	}
	if p.builder, err = build.New(build.Config{DataDir: cfg.DataDir, Store: p.images, Network: p.network, Egress: pulls,
		Limits:       build.Limits{Timeout: cfg.BuildTimeout, Memory: cfg.BuildMemory, Disk: cfg.BuildDisk},
		MinFreeBytes: 2 * cfg.BuildDiskFloor, DiskFloorBytes: cfg.BuildDiskFloor, MaxConcurrent: cfg.BuildConcurrency,
		StateDir: names.buildRuncState, CgroupParent: names.buildCgroup, Log: log.With("component", "build")}); err != nil {
		return nil, err
	}
	if err := p.builder.Cleanup(ctx); err != nil {
		log.Warn("clean up interrupted builds", "err", err)
	}
	return p, nil
}

// collectGarbage removes the images no release keeps, then the unpacked
// layers that neither a kept image, a named image nor a running instance
// uses.
func (p *platform) collectGarbage(ctx context.Context, keep []string) error {
	if err := p.builder.CollectGarbage(ctx, keep); err != nil {
		return err
	}
	named, err := namedImages(p.images)
	if err != nil {
		return err
	}
	keep = append(keep, named...)
	// The services' instances run on another runtime: their images'
	// layers are kept by name.
	if p.serviceImages != nil {
		keep = append(keep, p.serviceImages(ctx)...)
	}
	return p.runtime.PruneLayers(ctx, keep)
}

// namedImages returns the digests of the images the store still names after
// a collection: the releases' images it was told to keep, and the builders'
// run images. Their unpacked layers stay: a run image's are the first
// layers of every app's image, and without an app left to hold them (the
// last one destroyed) the next new app's first start would unpack them
// again (~180 MB of Debian; 0.7 to 7.9 s here).
func namedImages(images *imagestore.Store) ([]string, error) {
	list, err := images.List()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, e.Digest.String())
	}
	return out, nil
}

// close stops what the platform runs in the daemon; app instances keep
// running, and are re-adopted by the next start.
func (p *platform) close(ctx context.Context) error {
	var errs []error
	if p.router != nil {
		errs = append(errs, p.router.Shutdown(ctx))
	}
	if p.runtime != nil {
		errs = append(errs, p.runtime.Close())
	}
	if p.serviceRuntime != nil {
		errs = append(errs, p.serviceRuntime.Close())
	}
	if p.serviceRunc != nil {
		errs = append(errs, p.serviceRunc.Close())
	}
	if p.builder != nil {
		errs = append(errs, p.builder.Close())
	}
	if p.runc != nil {
		errs = append(errs, p.runc.Close())
	}
	return errors.Join(errs...)
}

// builders implements admin.Builders over the CNB platform.
type builders struct {
	platform *build.Platform
	dataDir  string
	mirror   string
	cache    string // debootstrap's cache; "" for DATA/builder/debootstrap
}

// HasDefault reports whether the default builder exists and was made from
// this skiff's buildpacks and lifecycle: after an upgrade, `builder:create
// --if-missing` (which make run does) makes it again.
func (b *builders) HasDefault() bool {
	if !b.platform.HasBuilder(build.DefaultBuilder) {
		return false
	}
	want, err := b.fingerprint()
	if err != nil {
		return false
	}
	have, _ := os.ReadFile(b.fingerprintPath())
	return string(have) == want
}

func (b *builders) fingerprintPath() string {
	return filepath.Join(b.dataDir, "builder", "default.fingerprint")
}

// fingerprint identifies what the default builder is made of: the
// buildpack binary, the embedded lifecycle and the Debian package lists.
func (b *builders) fingerprint() (string, error) {
	bin, err := buildpackBinary()
	if err != nil {
		return "", err
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "\n%s\n%v\n%v\n", build.LifecycleVersion(), buildpacks.BuilderPackages, buildpacks.RunPackages)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckBuildpacks checks pins against the app's builder in the store.
func (b *builders) CheckBuildpacks(_ context.Context, builder string, pins []string) error {
	return b.platform.CheckBuildpacks(builder, pins)
}

// CreateDefault lays out skiff's own buildpacks from the buildpack binary
// that `make build` puts next to skiff, and makes the default builder.
func (b *builders) CreateDefault(ctx context.Context, out io.Writer) error {
	bin, err := buildpackBinary()
	if err != nil {
		return err
	}
	tree, err := os.MkdirTemp(filepath.Join(b.dataDir), "buildpacks-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	if err := buildpacks.WriteTree(tree, bin, goruntime.GOARCH); err != nil {
		return err
	}
	if err := b.platform.CreateDefaultBuilder(ctx, build.CreateOptions{BuildpacksDir: tree, Mirror: b.mirror, CacheDir: b.cache,
		BuildPackages: buildpacks.BuilderPackages, RunPackages: buildpacks.RunPackages}, out); err != nil {
		return err
	}
	fp, err := b.fingerprint()
	if err != nil {
		return err
	}
	return os.WriteFile(b.fingerprintPath(), []byte(fp), 0o644)
}

// Pull fetches a builder image from a registry.
func (b *builders) Pull(ctx context.Context, ref string, out io.Writer) (string, error) {
	return b.platform.PullBuilder(ctx, ref, out)
}

// Stored reports whether a builder image is in the store already.
func (b *builders) Stored(ctx context.Context, ref string) (string, bool) {
	return b.platform.StoredBuilder(ctx, ref)
}

// buildpackBinary finds skiff-buildpack next to the skiff binary.
func buildpackBinary() (string, error) { return besideSkiff("skiff-buildpack") }

// besideSkiff finds one of the static helper programs `make build` puts
// next to skiff (or, failing that, on PATH).
func besideSkiff(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	self, _ = filepath.EvalSymlinks(self)
	bin := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(bin); err != nil {
		if p, lerr := exec.LookPath(name); lerr == nil {
			return p, nil
		}
		return "", fmt.Errorf("%s is missing: `make build` builds it next to skiff", bin)
	}
	return bin, nil
}
