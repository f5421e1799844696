package kubernetes

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// ClustersConfig is what Clusters needs.
type ClustersConfig struct {
	Store skiff.ClusterService
	// Image says how cluster c runs a spec's image (the reference its
	// nodes pull from skiff's registry, the pull credentials, the command).
	Image func(ctx context.Context, c *skiff.Cluster, spec *skiff.InstanceSpec) (*PodImage, error)
	// Registry tells whether cluster c's nodes have a registry to pull
	// from (skiff's served one, or c's external one that skiff may push
	// to); an error (what to configure) refuses clusters:add and
	// clusters:set.
	Registry func(ctx context.Context, c *skiff.Cluster) error
	// Push, when set, copies spec's image to cluster c's external
	// registry (a no-op for a cluster that pulls from skiff's).
	Push func(ctx context.Context, c *skiff.Cluster, spec *skiff.InstanceSpec, progress func(string)) error
	// Volume finds a volume of skiff's by id (SchedulerConfig.Volume).
	Volume func(ctx context.Context, id string) (*skiff.Volume, error)
	Logs   *applog.Store
	Log    *slog.Logger
	// OnBackends and OnCronRun are the schedulers' (SchedulerConfig).
	OnBackends func(appID string)
	OnCronRun  func(cluster string, run *CronRun)
	// Dial, when set, is how skiff reaches the clusters' APIs.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Clusters implements skiff.Clusters: it checks clusters, and keeps one
// Scheduler per cluster skiff knows, opened on first use.
type Clusters struct {
	cfg  ClustersConfig
	mu   sync.Mutex
	open map[string]*Scheduler
}

var _ skiff.Clusters = (*Clusters)(nil)

// NewClusters returns the clusters of cfg.Store.
func NewClusters(cfg ClustersConfig) *Clusters {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Clusters{cfg: cfg, open: map[string]*Scheduler{}}
}

func (cs *Clusters) client(c *skiff.Cluster) (*Client, error) {
	cfg, err := RESTConfig(c.Kubeconfig)
	if err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "the kubeconfig does not parse: %v", err)
	}
	if cs.cfg.Dial != nil {
		cfg.Dial = cs.cfg.Dial
	}
	cfg.Timeout = 30 * time.Second
	return NewClient(cfg)
}

// Check implements skiff.Clusters.
func (cs *Clusters) Check(ctx context.Context, c *skiff.Cluster) (string, string, error) {
	if cs.cfg.Registry != nil {
		if err := cs.cfg.Registry(ctx, c); err != nil {
			return "", "", err
		}
	}
	client, err := cs.client(c)
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	version, err := client.Check(ctx, Where{Namespace: c.Namespace, IngressClass: c.IngressClass, StorageClass: c.StorageClass})
	if err != nil {
		return "", "", err
	}
	if c.StorageClass != "" {
		if err := client.CheckStorageClass(ctx, c.Name, c.StorageClass); err != nil {
			return "", "", err
		}
	}
	return client.config.Host, version, nil
}

// Scheduler implements skiff.Clusters.
func (cs *Clusters) Scheduler(ctx context.Context, name string) (skiff.Scheduler, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if s := cs.open[name]; s != nil {
		return s, nil
	}
	c, err := cs.cfg.Store.FindCluster(ctx, name)
	if err != nil {
		return nil, err
	}
	client, err := cs.client(c)
	if err != nil {
		return nil, err
	}
	cfg := SchedulerConfig{Name: name, Client: client, Where: Where{Namespace: c.Namespace, IngressClass: c.IngressClass, StorageClass: c.StorageClass}, Logs: cs.cfg.Logs,
		Log: cs.cfg.Log.With("cluster", name), Volume: cs.cfg.Volume, OnBackends: cs.cfg.OnBackends,
		Image: func(ctx context.Context, spec *skiff.InstanceSpec) (*PodImage, error) {
			return cs.cfg.Image(ctx, c, spec)
		}}
	if cs.cfg.OnCronRun != nil {
		cfg.OnCronRun = func(run *CronRun) { cs.cfg.OnCronRun(name, run) }
	}
	if cs.cfg.Push != nil && c.Registry != "" {
		cfg.Push = func(ctx context.Context, spec *skiff.InstanceSpec, progress func(string)) error {
			return cs.cfg.Push(ctx, c, spec, progress)
		}
	}
	s := NewScheduler(cfg)
	cs.open[name] = s
	return s, nil
}

// OpenAll opens the scheduler of every cluster skiff knows, so that their
// pods are followed (their logs copied, their cron runs recorded) from the
// start.
func (cs *Clusters) OpenAll(ctx context.Context) error {
	list, err := cs.cfg.Store.Clusters(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		if _, err := cs.Scheduler(ctx, c.Name); err != nil {
			cs.cfg.Log.Error("open a cluster", "cluster", c.Name, "err", err)
		}
	}
	return nil
}

// Close implements skiff.Clusters.
func (cs *Clusters) Close(name string) {
	cs.mu.Lock()
	s := cs.open[name]
	delete(cs.open, name)
	cs.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// CloseAll closes every open scheduler; what runs on the clusters goes on.
func (cs *Clusters) CloseAll() {
	cs.mu.Lock()
	names := make([]string, 0, len(cs.open))
	for n := range cs.open {
		names = append(names, n)
	}
	cs.mu.Unlock()
	for _, n := range names {
		cs.Close(n)
	}
}

// RBAC implements skiff.Clusters.
func (cs *Clusters) RBAC() []byte { return RBAC }

// cnbMetadataLabel marks images the CNB lifecycle exported: their process
// types are /cnb/process/<type>, and a command runs through the launcher.
const cnbMetadataLabel = "io.buildpacks.build.metadata"

// ImageFor is how a pod runs spec from an image with config cf, pulled as
// ref: the command of its process type (or of spec's command), and its
// numeric user, which a cluster needs to check that it is not root.
func ImageFor(cf *v1.ConfigFile, ref string, spec *skiff.InstanceSpec) (*PodImage, error) {
	img := &PodImage{Ref: ref}
	cnb := cf.Config.Labels[cnbMetadataLabel] != ""
	switch {
	case len(spec.Command) > 0 && cnb:
		img.Command, img.Args = []string{"/cnb/lifecycle/launcher"}, []string{strings.Join(spec.Command, " ")}
	case len(spec.Command) > 0:
		img.Args = spec.Command
	case cnb:
		img.Command = []string{"/cnb/process/" + spec.ProcessType}
	}
	u := cf.Config.User
	if u == "" {
		return nil, skiff.Errorf(skiff.EINVALID, "the image runs as root, which a cluster's pods may not: build it with a user (skiff's builders do)")
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	uid, err := strconv.ParseInt(us, 10, 64)
	if err != nil || uid < 0 || uid >= 1<<31 {
		return nil, skiff.Errorf(skiff.EINVALID, "the image runs as user %q, a name: a cluster needs a number to check it is not root", u)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.ParseInt(gs, 10, 64); err != nil || gid < 0 || gid >= 1<<31 {
			return nil, skiff.Errorf(skiff.EINVALID, "the image runs as group %q, a name: a cluster needs a number", gs)
		}
	}
	if uid == 0 {
		return nil, skiff.Errorf(skiff.EINVALID, "the image runs as root (user %s), which a cluster's pods may not", u)
	}
	img.UID, img.GID = &uid, &gid
	return img, nil
}
