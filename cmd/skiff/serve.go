package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/control"
	"github.com/skiffhq/skiff/cron"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/gitserver"
	"github.com/skiffhq/skiff/internal/egress"
	"github.com/skiffhq/skiff/router"
	"github.com/skiffhq/skiff/services"
	"github.com/skiffhq/skiff/store"
)

// Config is the daemon's configuration, from flags with environment
// fallbacks, validated once by parseServe.
type Config struct {
	DataDir      string
	SSHAddr      string
	HTTPAddr     string
	HTTPSAddr    string
	Domain       string
	MaxPushBytes int64
	HookCommand  string // the program git runs as its hook: skiff-hook, or skiff

	SSHPreAuthTimeout time.Duration
	SSHIdleTimeout    time.Duration

	GitOnly        bool   // receive and record pushes; build and run nothing
	ResourcePrefix string // names skiff's host resources (nftables table, cgroups, runc state)
	NetworkPool    string // where instances' addresses come from
	ACMECA         string // ACME directory URL; "" turns automatic certificates off
	ACMEEmail      string
	ACMECARoots    string // PEM file of roots for the ACME directory's own HTTPS; "" for the system's
	DebianMirror   string // for builder:create; "" reads the machine's apt sources
	// DebootstrapCache keeps builder:create's Debian root file systems; ""
	// for DATA/builder/debootstrap.
	DebootstrapCache string

	TrustedProxies []netip.Prefix // load balancers whose X-Forwarded-* the router believes
	// AllowRegistry are the registries (host or host:port) that pulls may
	// reach although they are not public (a registry on the LAN).
	AllowRegistry []string

	// The registry the Kubernetes clusters' nodes pull the apps' images
	// from: where it listens, the host[:port] the nodes know it by, and
	// its TLS certificate (one the nodes trust).
	RegistryAddr, RegistryHost, RegistryCert, RegistryKey string

	KeepReleases     int           // releases per app whose images are kept
	BuildTimeout     time.Duration // wall clock of one build
	BuildMemory      int64         // memory of one build
	BuildConcurrency int           // builds running at once, across apps
	BuildDisk        int64         // what one build may write
	BuildDiskFloor   int64         // free space below which builds stop (twice it to start one)
	VolumeSize       int64         // a new volume's size when storage:ensure-directory names none
	StorageBudget    int64         // the most all volumes' sizes may add up to; 0: the disk's room

	publicHTTPSPort int // the HTTPS port in redirects
	// The bound ports, where ACME validation reaches the router.
	publicHTTPPort, publicTLSPort int
}

func parseServe(dataDir string, args []string) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", dataDir, "data directory (env SKIFF_DATA)")
	fs.StringVar(&cfg.SSHAddr, "ssh-addr", envOr("SKIFF_SSH_ADDR", ":2222"), "SSH listen address (env SKIFF_SSH_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr("SKIFF_HTTP_ADDR", ":80"), "HTTP listen address (env SKIFF_HTTP_ADDR)")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", envOr("SKIFF_HTTPS_ADDR", ":443"), "HTTPS listen address (env SKIFF_HTTPS_ADDR)")
	fs.StringVar(&cfg.Domain, "domain", envOr("SKIFF_DOMAIN", "localhost"), "base domain: apps answer at <app>.<domain> (env SKIFF_DOMAIN)")
	fs.DurationVar(&cfg.SSHPreAuthTimeout, "ssh-preauth-timeout", 20*time.Second, "close SSH connections that have not authenticated by then")
	fs.DurationVar(&cfg.SSHIdleTimeout, "ssh-idle-timeout", 10*time.Minute, "close SSH connections idle for this long")
	fs.BoolVar(&cfg.GitOnly, "git-only", false, "only receive and record pushes: build and run no apps (needs no root)")
	fs.StringVar(&cfg.ResourcePrefix, "resource-prefix", envOr("SKIFF_RESOURCE_PREFIX", "skiff"), "name of skiff's nftables table, cgroups and runc state on the host; change it only to run two daemons on one host")
	fs.StringVar(&cfg.NetworkPool, "network-pool", envOr("SKIFF_NETWORK_POOL", "10.213.0.0/16"), "private addresses for app instances and builds (a /30 each)")
	fs.StringVar(&cfg.ACMECA, "acme-ca", envOr("SKIFF_ACME_CA", "https://acme-v02.api.letsencrypt.org/directory"), "ACME directory for certs:auto; empty turns ACME off")
	fs.StringVar(&cfg.ACMECARoots, "acme-ca-roots", envOr("SKIFF_ACME_CA_ROOTS", ""), "PEM file of the roots that the ACME directory's HTTPS certificate chains to (default: the system's)")
	fs.StringVar(&cfg.ACMEEmail, "acme-email", envOr("SKIFF_ACME_EMAIL", ""), "contact address for the ACME account")
	fs.StringVar(&cfg.DebianMirror, "debian-mirror", envOr("SKIFF_DEBIAN_MIRROR", ""), "Debian mirror for builder:create (default: the machine's apt sources)")
	fs.StringVar(&cfg.DebootstrapCache, "debootstrap-cache", envOr("SKIFF_DEBOOTSTRAP_CACHE", ""), "where builder:create keeps Debian root file systems (default DATA/builder/debootstrap)")
	fs.IntVar(&cfg.KeepReleases, "keep-releases", envInt("SKIFF_KEEP_RELEASES", 5), "releases per app whose images are kept (older ones cannot be rolled back to)")
	fs.DurationVar(&cfg.BuildTimeout, "build-timeout", envDuration("SKIFF_BUILD_TIMEOUT", 30*time.Minute), "longest a build may run")
	buildMemory := fs.String("build-memory", envOr("SKIFF_BUILD_MEMORY", "2g"), "memory one build may use")
	buildDisk := fs.String("build-disk", envOr("SKIFF_BUILD_DISK", "8g"), "the most one build may write to disk (workspace, layers, cache, the exported image)")
	volumeSize := fs.String("volume-size", envOr("SKIFF_VOLUME_SIZE", "1g"), "the size of a new volume when storage:ensure-directory gives no --size")
	storageBudget := fs.String("storage-budget", envOr("SKIFF_STORAGE_BUDGET", "0"), "the most all volumes' sizes may add up to (0: what the disk holds)")
	buildFloor := fs.String("build-disk-floor", envOr("SKIFF_BUILD_DISK_FLOOR", "1g"), "free space on the data directory's disk below which running builds are stopped; a build starts only with twice this free")
	fs.IntVar(&cfg.BuildConcurrency, "build-concurrency", envInt("SKIFF_BUILD_CONCURRENCY", 2), "builds running at once across apps; more wait their turn")
	trusted := fs.String("trusted-proxies", envOr("SKIFF_TRUSTED_PROXIES", ""), "comma-separated addresses or CIDRs of load balancers or CDNs in front of skiff, whose X-Forwarded-For/-Proto/-Port the router believes")
	allowRegistry := fs.String("allow-registry", envOr("SKIFF_ALLOW_REGISTRY", ""), "comma-separated registries (host or host:port) that builder:set may pull from although they are not on a public address, like a registry on your LAN")
	fs.StringVar(&cfg.RegistryAddr, "registry-addr", envOr("SKIFF_REGISTRY_ADDR", ""), "serve the apps' images to Kubernetes clusters on this address (TLS; their nodes must reach it), like :5443; empty: no clusters")
	fs.StringVar(&cfg.RegistryHost, "registry-host", envOr("SKIFF_REGISTRY_HOST", ""), "host[:port] the clusters' nodes reach the registry at (default: --registry-addr, with --domain for an unspecified address)")
	fs.StringVar(&cfg.RegistryCert, "registry-cert", envOr("SKIFF_REGISTRY_CERT", ""), "PEM certificate (chain) of the registry, for a name the clusters' nodes trust")
	fs.StringVar(&cfg.RegistryKey, "registry-key", envOr("SKIFF_REGISTRY_KEY", ""), "PEM private key of --registry-cert")
	maxPush := fs.String("max-push-size", envOr("SKIFF_MAX_PUSH_SIZE", "1g"), "largest pack a push may send (env SKIFF_MAX_PUSH_SIZE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.TrustedProxies, err = parsePrefixes(*trusted); err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	for _, a := range strings.Split(*allowRegistry, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.AllowRegistry = append(cfg.AllowRegistry, a)
		}
	}
	if _, err := egress.New(egress.Config{Allow: cfg.AllowRegistry}); err != nil {
		return nil, err
	}
	if cfg.RegistryAddr != "" && (cfg.RegistryCert == "" || cfg.RegistryKey == "") {
		return nil, errors.New("--registry-addr needs --registry-cert and --registry-key: the clusters' nodes pull over TLS")
	}
	if cfg.MaxPushBytes, err = parseSize(*maxPush); err != nil {
		return nil, fmt.Errorf("--max-push-size: %w", err)
	}
	if cfg.BuildMemory, err = parseSize(*buildMemory); err != nil || cfg.BuildMemory < 64<<20 {
		return nil, fmt.Errorf("--build-memory: use a size of at least 64m, like 2g")
	}
	if cfg.BuildDisk, err = parseSize(*buildDisk); err != nil || cfg.BuildDisk < 64<<20 {
		return nil, fmt.Errorf("--build-disk: use a size of at least 64m, like 8g")
	}
	if cfg.VolumeSize, err = parseSize(*volumeSize); err != nil || cfg.VolumeSize < 16<<20 {
		return nil, fmt.Errorf("--volume-size: use a size of at least 16m, like 1g")
	}
	if *storageBudget != "0" {
		if cfg.StorageBudget, err = parseSize(*storageBudget); err != nil {
			return nil, fmt.Errorf("--storage-budget: use a size, like 100g, or 0")
		}
	}
	if cfg.BuildDiskFloor, err = parseSize(*buildFloor); err != nil || cfg.BuildDiskFloor < 1 {
		return nil, fmt.Errorf("--build-disk-floor: use a size, like 1g")
	}
	if cfg.KeepReleases < 1 || cfg.BuildConcurrency < 1 || cfg.BuildTimeout < time.Minute {
		return nil, errors.New("--keep-releases and --build-concurrency take 1 or more, --build-timeout a minute or more")
	}
	cfg.Domain = strings.TrimSuffix(strings.ToLower(cfg.Domain), ".")
	if cfg.Domain == "" {
		return nil, errors.New("--domain must not be empty")
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := checkResourcePrefix(cfg.ResourcePrefix); err != nil {
		return nil, err
	}
	if cfg.HookCommand, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find the skiff binary: %w", err)
	}
	if cfg.HookCommand, err = filepath.EvalSymlinks(cfg.HookCommand); err != nil {
		return nil, err
	}
	// skiff-hook, where make build put it beside skiff, starts in a fifth
	// of skiff's time, once per push; not one found on PATH, which may be
	// another version's.
	if hook := filepath.Join(filepath.Dir(cfg.HookCommand), "skiff-hook"); isExecutable(hook) {
		cfg.HookCommand = hook
	}
	return cfg, nil
}

// parseSize reads sizes like 512m, 1g, 1048576.
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want a number with an optional k, m or g)", s)
	}
	return n * mult, nil
}

func serve(dataDir string, args []string) int {
	cfg, err := parseServe(dataDir, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "skiff serve: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signalContext()
	defer stop()
	m := &Main{Config: cfg, Log: log}
	if err := m.Run(ctx); err != nil {
		log.Error("skiff serve", "err", err)
		if cerr := m.Close(); cerr != nil {
			log.Error("closing after a failed start", "err", cerr)
		}
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := m.Close(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// Main is the running daemon: Run starts it, Close stops it.
type Main struct {
	Config *Config
	Log    *slog.Logger

	db       *store.DB
	ssh      *gitserver.Server
	control  *control.Server
	platform *platform
	pipeline *deploy.Pipeline
	cron     *cron.Scheduler
	kube     *kube
	services *services.Manager
	closers  []func() error
	bg       sync.WaitGroup
	stop     context.CancelFunc
}

// Ready is what DATA/ready.json says once the daemon serves.
type Ready struct {
	SSH     string `json:"ssh"`
	HTTP    string `json:"http"`
	HTTPS   string `json:"https"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
	// Domain is the base domain this daemon serves (make run tells when
	// SKIFF_DOMAIN says another), HostKey the SSH host key's fingerprint,
	// for a user to check at the first connection.
	Domain  string `json:"domain"`
	HostKey string `json:"host_key"`
}

// Run opens the state, binds every listener, starts serving, writes
// ready.json, and converges the apps in the background. It returns once
// the daemon is up.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	// The control socket comes first: it refuses to start a second daemon
	// on the same data directory before anything else is touched.
	socket := filepath.Join(cfg.DataDir, "control.sock")
	controlListener, err := control.Listen(socket)
	if err != nil {
		return err
	}
	m.closers = append(m.closers, controlListener.Close)

	db, err := store.Open(ctx, filepath.Join(cfg.DataDir, "skiff.db"))
	if err != nil {
		return err
	}
	m.db = db
	hostKey, err := gitserver.LoadOrCreateHostKey(filepath.Join(cfg.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		return err
	}
	repos, err := gitserver.NewRepos(filepath.Join(cfg.DataDir, "repos"))
	if err != nil {
		return err
	}
	sshListener, httpListener, httpsListener, err := m.listenAll(cfg)
	if err != nil {
		return err
	}

	// ACME validates on the ports the router really has.
	cfg.publicHTTPPort, cfg.publicTLSPort = tcpPort(httpListener.Addr()), tcpPort(httpsListener.Addr())
	cfg.publicHTTPSPort = cfg.publicTLSPort
	if m.platform, err = openPlatform(ctx, cfg, m.Log); err != nil {
		return err
	}
	pl := m.platform

	if err := m.wire(ctx, db, repos, hostKey, socket, sshListener.Addr()); err != nil {
		return err
	}

	// Recovery and routes first: after a restart the apps' instances are
	// still up, and the first request should reach them, not a 404 (the
	// listeners are bound, so clients queue meanwhile).
	m.pipeline.Recover(ctx, 5*time.Second)

	m.serve("control socket", func() error { return m.control.Serve(controlListener) })
	m.serve("ssh server", func() error { return m.ssh.Serve(sshListener) })
	m.serve("http", func() error { return pl.router.Serve(httpListener) })
	m.serve("https", func() error { return pl.router.ServeTLS(httpsListener) })

	ready := Ready{SSH: sshListener.Addr().String(), HTTP: httpListener.Addr().String(), HTTPS: httpsListener.Addr().String(), PID: os.Getpid(), Version: skiff.Version,
		Domain: cfg.Domain, HostKey: gossh.FingerprintSHA256(hostKey.PublicKey())}
	if err := writeJSONAtomic(filepath.Join(cfg.DataDir, "ready.json"), ready); err != nil {
		return err
	}
	mode := "builds and runs apps"
	if cfg.GitOnly {
		mode = "git only: pushes are recorded, not built"
	}
	m.Log.Info("skiff is up", "version", skiff.Version, "data", cfg.DataDir, "ssh", ready.SSH, "http", ready.HTTP, "https", ready.HTTPS, "domain", cfg.Domain, "mode", mode)
	m.converge()
	return nil
}

// wire makes the daemon's parts over the opened state and platform: the
// deploy pipeline (the one owner of changes to apps), cron, the clusters,
// the services, the command table, the SSH server and the control server.
func (m *Main) wire(ctx context.Context, db *store.DB, repos *gitserver.Repos, hostKey gossh.Signer, socket string, sshAddr net.Addr) error {
	cfg, pl := m.Config, m.platform
	var err error
	dcfg := deploy.Config{Store: db, Repos: repos, Routes: pl.router, BaseDomain: cfg.Domain, HTTPPort: cfg.publicHTTPPort, Log: m.Log.With("component", "deploy"),
		ReleaseImages: db.ReleaseImages, KeepReleases: cfg.KeepReleases}
	svc := admin.Services{Apps: db, Users: db, Access: db, Events: db, Pushes: db, Releases: db, Config: db, Domains: db, Settings: db, Routes: pl.router, Backup: db}
	if pl.runtime != nil {
		dcfg.Scheduler, dcfg.Builder, dcfg.ImageGC, dcfg.Volumes = pl.runtime, pl.builder, pl.collectGarbage, pl.volumes
		dcfg.VolumeSize, dcfg.StorageBudget = cfg.VolumeSize, cfg.StorageBudget
		m.kube, err = openKube(cfg, pl, db, func(appID string) {
			if m.pipeline != nil {
				m.pipeline.BackendsChanged(appID)
			}
		}, func() *cron.Scheduler { return m.cron }, m.Log)
		if err != nil {
			return err
		}
		dcfg.Clusters = m.kube.clusters
		dcfg.OnRelease = func(string) {
			if m.cron != nil {
				m.cron.Refresh()
			}
		}
		svc.Builder, svc.Volumes = pl.builder, db
		svc.Clusters, svc.ClusterStore = m.kube.clusters, db
		svc.Builders = &builders{platform: pl.builder, dataDir: cfg.DataDir, mirror: cfg.DebianMirror, cache: cfg.DebootstrapCache}
	}
	m.pipeline = deploy.New(dcfg)
	svc.Deployer = m.pipeline
	if pl.runtime != nil {
		svc.Scheduler = m.pipeline.Scheduler()
		m.cron = cron.New(cron.Config{Store: db, Runs: &cron.SchedulerRuns{Scheduler: m.pipeline.Scheduler(), Formation: db.Formation},
			Elsewhere: m.pipeline.RunsElsewhere, Reapply: m.pipeline.CronChanged, Log: m.Log.With("component", "cron")})
		svc.Cron, svc.CronRuns = m.cron, db
		if err := m.kube.clusters.OpenAll(ctx); err != nil {
			return err
		}
	}
	if pl.serviceRuntime != nil {
		if m.services, err = openServices(ctx, cfg, pl, db, m.pipeline, m.Log); err != nil {
			return err
		}
		svc.Services, svc.ServiceStore = m.services, db
	}

	info := admin.Info{SSHHost: cfg.Domain + portSuffix(sshAddr), Domain: cfg.Domain, HTTPPort: cfg.publicHTTPPort}
	commands := admin.New(svc, info, pl.router, m.Log.With("component", "admin"))
	m.ssh, err = gitserver.New(gitserver.Config{
		HostKey: hostKey, Users: db, Apps: db, Access: db, Deployer: m.pipeline, Commands: commands, Repos: repos,
		Log:         m.Log.With("component", "ssh"),
		HookCommand: cfg.HookCommand, HooksDir: filepath.Join(cfg.DataDir, "hooks"), ControlSocket: socket,
		MaxPushBytes: cfg.MaxPushBytes, PreAuthTimeout: cfg.SSHPreAuthTimeout, IdleTimeout: cfg.SSHIdleTimeout,
	})
	if err != nil {
		return err
	}
	m.control = &control.Server{Commands: commands, Hooks: m.ssh, Log: m.Log.With("component", "control")}

	return nil
}

// prepareDataDir creates the data directory and the directories every
// daemon needs in it, and removes the last run's ready.json.
func prepareDataDir(dataDir string) error {
	for _, dir := range []string{dataDir, filepath.Join(dataDir, "repos"), filepath.Join(dataDir, "logs")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
	}
	// Instances run as unprivileged ids and their layers live below DATA:
	// the directory must be traversable, while everything secret in it is
	// 0600 or in 0700 directories.
	if err := os.Chmod(dataDir, 0o711); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	os.Remove(filepath.Join(dataDir, "ready.json"))
	return nil
}

// listenAll binds the SSH, HTTP and HTTPS listeners, or takes those
// systemd passed (socket activation). Each is closed by Close.
func (m *Main) listenAll(cfg *Config) (sshL, httpL, httpsL net.Listener, err error) {
	activated, err := activatedListeners()
	if err != nil {
		return nil, nil, nil, err
	}
	listen := func(what, addr string) (net.Listener, error) {
		if l := activated[strings.ToLower(what)]; l != nil {
			m.Log.Info("using the socket systemd passed", "for", what, "addr", l.Addr().String())
			if what != "SSH" {
				// As router.Listen's own: accepted once the request's first bytes are there.
				if err := router.DeferAccept(l); err != nil {
					m.Log.Warn("the socket systemd passed serves without deferred accept", "for", what, "err", err)
				}
			}
			m.closers = append(m.closers, l.Close)
			return l, nil
		}
		listen := net.Listen
		if what != "SSH" {
			listen = func(_, addr string) (net.Listener, error) { return router.Listen(addr) }
		}
		l, err := listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen for %s on %s: %w (set --%s-addr or SKIFF_%s_ADDR to use another)", what, addr, err, strings.ToLower(what), what)
		}
		m.closers = append(m.closers, l.Close)
		return l, nil
	}
	if sshL, err = listen("SSH", cfg.SSHAddr); err != nil {
		return nil, nil, nil, err
	}
	if httpL, err = listen("HTTP", cfg.HTTPAddr); err != nil {
		return nil, nil, nil, err
	}
	if httpsL, err = listen("HTTPS", cfg.HTTPSAddr); err != nil {
		return nil, nil, nil, err
	}
	return sshL, httpL, httpsL, nil
}

// converge brings the apps to the stored state in the background, until
// Close: re-adopted instances, what an earlier stop interrupted, instances
// to start (after a reboot); then cron, and the watch over the instances.
// Requests for apps not yet converged get the router's answer for an app
// without instances meanwhile.
func (m *Main) converge() {
	bgCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	if m.cron != nil {
		m.serve("cron", func() error { return m.cron.Run(bgCtx) })
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		if err := m.pipeline.Reconcile(bgCtx); err != nil && bgCtx.Err() == nil {
			m.Log.Error("reconcile", "err", err)
		}
		m.pipeline.Watch(bgCtx, 10*time.Second)
	}()
}

// serve runs a server in the background until Close.
func (m *Main) serve(what string, fn func() error) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		if err := fn(); err != nil {
			m.Log.Error(what, "err", err)
		}
	}()
}

// Close stops the daemon: new connections stop at once, pushes and
// requests in flight get a grace period, then everything is closed. App
// instances keep running.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m.Config != nil {
		os.Remove(filepath.Join(m.Config.DataDir, "ready.json"))
	}
	if m.stop != nil {
		m.stop()
	}
	var errs []error
	if m.ssh != nil {
		_ = m.ssh.Shutdown(ctx) // past the grace it closes the rest itself
	}
	if m.control != nil {
		errs = append(errs, m.control.Close())
	}
	if m.services != nil {
		errs = append(errs, m.services.Close())
	}
	if m.kube != nil {
		errs = append(errs, m.kube.close(ctx))
	}
	if m.platform != nil {
		errs = append(errs, m.platform.close(ctx))
	}
	for _, c := range m.closers {
		_ = c() // listeners: closing them reports nothing to act on
	}
	m.bg.Wait()
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	return errors.Join(errs...)
}

func tcpPort(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}

func portSuffix(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.Port != 22 {
		return ":" + strconv.Itoa(t.Port)
	}
	return ""
}

func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// parsePrefixes reads "10.0.0.0/8, 192.0.2.7": CIDRs, or single addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or a CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
