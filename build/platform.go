package build

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/egress"
	"github.com/skiffhq/skiff/internal/imagestore"
)

// DefaultBuilder is the builder that builder:create makes and that apps use
// unless builder:set says otherwise.
const DefaultBuilder = "skiff.local/builder:latest"

// Limits bound one build.
type Limits struct {
	Memory  int64         // bytes; default 2 GiB
	CPUs    float64       // default 2
	Pids    int64         // default 2048
	Timeout time.Duration // wall clock; default 30 minutes
	// Disk caps what one build writes (its workspace, layers, cache
	// changes, temporary files and exported image); default 8 GiB.
	Disk int64
}

// Config configures a Platform. cmd/skiff fills it from flags.
type Config struct {
	DataDir string // DATA: builder/, cache/, logs/builds/, tmp/builds/ live under it
	Store   *imagestore.Store
	Log     *slog.Logger
	Runc    string // runc binary; default "runc" from PATH
	// LifecycleDir holds lifecycle, launcher and VERSION; "" uses the
	// binaries embedded in skiff (see lifecycle.go).
	LifecycleDir string
	Limits       Limits
	// MaxConcurrent caps builds running at once across apps; default 2.
	MaxConcurrent int
	// MinFreeBytes is the free space DATA must have for a build to start;
	// default 2 GiB.
	MinFreeBytes int64
	// DiskFloorBytes is the free space below which a running build is
	// stopped (builds together filling the disk); default half of
	// MinFreeBytes.
	DiskFloorBytes int64
	// LogMaxBytes caps each build log on disk; default 10 MiB.
	LogMaxBytes int64
	// UIDBase is the host uid (and gid) that root in a build's user
	// namespace maps to; the namespace spans 65536 ids from it, none of
	// them a real host user, and apart from app instances' range.
	// Default 1879048192 (0x70000000).
	UIDBase int
	// Network gives builds egress to the internet (npm, the Go module
	// proxy) and nothing else: not the host's services, not apps. It is the
	// one the runtime uses too. nil: builds get no network at all.
	Network *container.Network
	// ResolvConf is the resolv.conf builds get; default the host's
	// upstream resolvers (see resolvConf).
	ResolvConf string
	// Egress is what registry pulls dial through (builder:set): public
	// addresses only, and the hosts an admin allowed. nil: no pulls.
	Egress *egress.Dialer
	// StateDir (runc's state) and CgroupParent keep build containers apart
	// from app instances' and from other skiffs' (tests); defaults
	// /run/skiff/runc-builds and skiff-builds.
	StateDir, CgroupParent string
}

// Platform runs builds. It implements skiff.Builder.
type Platform struct {
	cfg     Config
	store   *imagestore.Store
	log     *slog.Logger
	sem     chan struct{}
	sandbox *sandbox

	mu       sync.Mutex
	running  map[string]context.CancelFunc // app id → cancel of its build
	settling map[string]chan struct{}      // app id → closed when its last build has settled (settle.go)
	settles  sync.WaitGroup                // builds not settled yet
	// settleHook, when set (tests), runs first in each build's settle;
	// false stops the settle there, as a daemon killed then would.
	settleHook func(buildID string) bool

	rootfsMu sync.Mutex
	rootfs   map[string]*sync.Mutex // builder digest → unpack lock

	// making is when CreateDefaultBuilder began (unix nanoseconds), while
	// it runs: a push meanwhile is told to wait for it, not to make one.
	making atomic.Int64
}

var _ skiff.Builder = (*Platform)(nil)

// New returns a Platform. It creates its directories under cfg.DataDir.
func New(cfg Config) (*Platform, error) {
	if cfg.DataDir == "" || cfg.Store == nil {
		return nil, fmt.Errorf("build: DataDir and Store are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	if cfg.Limits.Memory == 0 {
		cfg.Limits.Memory = 2 << 30
	}
	if cfg.Limits.CPUs == 0 {
		cfg.Limits.CPUs = 2
	}
	if cfg.Limits.Pids == 0 {
		cfg.Limits.Pids = 2048
	}
	if cfg.Limits.Timeout == 0 {
		cfg.Limits.Timeout = 30 * time.Minute
	}
	if cfg.Limits.Disk == 0 {
		cfg.Limits.Disk = 8 << 30
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 2
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 2 << 30
	}
	if cfg.DiskFloorBytes == 0 {
		cfg.DiskFloorBytes = cfg.MinFreeBytes / 2
	}
	if cfg.LogMaxBytes == 0 {
		cfg.LogMaxBytes = 10 << 20
	}
	if cfg.UIDBase == 0 {
		cfg.UIDBase = 0x70000000
	}
	// Builds run as ids of a user namespace that are nobody on the host:
	// the directories down to their mounts must be searchable (not
	// listable) by others. Logs stay private.
	for _, d := range []string{"", "builder", "cache", "tmp", "tmp/builds"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o711); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		if err := os.Chmod(filepath.Join(cfg.DataDir, d), 0o711); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "logs", "builds"), 0o700); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/skiff/runc-builds"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "skiff-builds"
	}
	sb := &sandbox{log: cfg.Log, cfg: container.Config{
		Runc: cfg.Runc, StateDir: cfg.StateDir, CgroupParent: cfg.CgroupParent,
		Network: cfg.Network, IDMap: container.IDMap{HostID: uint32(cfg.UIDBase), Size: 65536}, Log: cfg.Log, //nolint:gosec // UIDBase is a uid: below 2^32
	}}
	return &Platform{
		cfg: cfg, store: cfg.Store, log: cfg.Log, sandbox: sb,
		sem:      make(chan struct{}, cfg.MaxConcurrent),
		running:  map[string]context.CancelFunc{},
		settling: map[string]chan struct{}{},
		rootfs:   map[string]*sync.Mutex{},
	}, nil
}

// Cancel stops the app's running build.
func (p *Platform) Cancel(appID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.running[appID]; ok {
		c()
		return true
	}
	return false
}

// PurgeCache removes the app's build cache. It refuses while the app
// builds, whose cache is in use.
func (p *Platform) PurgeCache(ctx context.Context, appID string) error {
	if err := validID(appID); err != nil {
		return err
	}
	p.mu.Lock()
	_, busy := p.running[appID]
	p.mu.Unlock()
	if busy {
		return skiff.Errorf(skiff.ECONFLICT, "the app is building; purge its cache when the build has finished (or cancel it)")
	}
	if err := p.waitSettled(ctx, appID); err != nil { // its last build may still be keeping its cache
		return err
	}
	dir := p.cacheDir(appID)
	tmp := dir + ".purge-" + fmt.Sprint(time.Now().UnixNano())
	if err := os.Rename(dir, tmp); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("purge cache of %s: %w", appID, err)
	}
	return os.RemoveAll(tmp)
}

// BuildLog opens a build's log.
func (p *Platform) BuildLog(appID, buildID string) (io.ReadCloser, error) {
	if err := validID(appID); err != nil {
		return nil, err
	}
	if err := validID(buildID); err != nil {
		return nil, err
	}
	f, err := os.Open(p.logPath(appID, buildID))
	if os.IsNotExist(err) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "no log for build %s", buildID)
	}
	return f, err
}

// CollectGarbage keeps the app images whose digests are in keep and removes
// the other app images, and blobs nothing refers to.
func (p *Platform) CollectGarbage(ctx context.Context, keep []string) error {
	var hs []v1.Hash
	for _, k := range keep {
		h, err := v1.NewHash(k)
		if err != nil {
			return fmt.Errorf("collect garbage: %w", err)
		}
		hs = append(hs, h)
	}
	res, err := p.store.GC(ctx, hs)
	if err != nil {
		return err
	}
	p.log.Info("image garbage collected", "images", len(res.Untagged), "blobs", res.BlobsRemoved, "bytes", res.BytesFreed)
	return p.removeStaleBuilders()
}

// removeStaleBuilders removes unpacked root file systems of builders the
// store no longer holds (replaced by builder:create or builder:set). While
// any build runs it waits for a later collection: the build may use one.
func (p *Platform) removeStaleBuilders() error {
	p.mu.Lock()
	busy := len(p.running) > 0 || len(p.settling) > 0
	p.mu.Unlock()
	if busy {
		return nil
	}
	p.rootfsMu.Lock()
	defer p.rootfsMu.Unlock()
	dir := filepath.Join(p.cfg.DataDir, "builder")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if len(e.Name()) != 64 || !e.IsDir() {
			continue // debootstrap's cache, unpacks in progress
		}
		if _, err := p.store.Resolve("sha256:" + e.Name()); err == nil {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("remove stale builder: %w", err)
		}
		delete(p.rootfs, e.Name())
	}
	return nil
}

func (p *Platform) cacheDir(appID string) string { return filepath.Join(p.cfg.DataDir, "cache", appID) }
func (p *Platform) logPath(appID, buildID string) string {
	return filepath.Join(p.cfg.DataDir, "logs", "builds", appID, buildID+".log")
}

// validID accepts the ids skiff makes (app and build ids): they become path
// elements and image tags.
func validID(id string) error {
	if id == "" || len(id) > 64 {
		return skiff.Errorf(skiff.EINVALID, "invalid id %q", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return skiff.Errorf(skiff.EINVALID, "invalid id %q", id)
		}
	}
	if id[0] == '-' || id[0] == '_' {
		return skiff.Errorf(skiff.EINVALID, "invalid id %q", id)
	}
	return nil
}
