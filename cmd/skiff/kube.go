package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/cron"
	"github.com/skiffhq/skiff/internal/imagestore"
	"github.com/skiffhq/skiff/kubernetes"
	"github.com/skiffhq/skiff/registry"
	"github.com/skiffhq/skiff/store"
)

// kube is skiff on Kubernetes clusters: its image store served to their
// nodes as a registry (--registry-addr), and a scheduler per cluster.
type kube struct {
	clusters *kubernetes.Clusters
	server   *http.Server
	host     string // the registry as the clusters' nodes reach it
	images   *imagestore.Store
	db       *store.DB
	log      *slog.Logger
}

// openKube serves the registry (when configured) and opens the clusters.
// Deploy's BackendsChanged and cron's RecordElsewhere are reached through
// backends and crons, set once they exist.
func openKube(cfg *Config, pl *platform, db *store.DB, backends func(appID string), crons func() *cron.Scheduler, log *slog.Logger) (*kube, error) {
	k := &kube{images: pl.images, db: db, log: log}
	if cfg.RegistryAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.RegistryCert, cfg.RegistryKey)
		if err != nil {
			return nil, fmt.Errorf("--registry-cert and --registry-key: %w (the registry serves TLS with a certificate the clusters' nodes trust)", err)
		}
		l, err := net.Listen("tcp", cfg.RegistryAddr)
		if err != nil {
			return nil, fmt.Errorf("listen for the registry on %s: %w (set --registry-addr or SKIFF_REGISTRY_ADDR to use another)", cfg.RegistryAddr, err)
		}
		k.host = cfg.RegistryHost
		if k.host == "" {
			k.host = registryHost(l.Addr(), cfg.Domain)
		}
		k.server = &http.Server{Handler: registry.New(pl.images, regAccess{db}, log.With("component", "registry")),
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
		go func() {
			if err := k.server.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("registry", "err", err)
			}
		}()
		log.Info("serving the image store to clusters", "addr", l.Addr().String(), "as", k.host)
	}
	k.clusters = kubernetes.NewClusters(kubernetes.ClustersConfig{
		Store: db, Image: k.image, Registry: k.ready, Push: k.push, Logs: pl.runtime.LogStore(), Log: log.With("component", "kubernetes"),
		OnBackends: backends, Volume: func(ctx context.Context, id string) (*skiff.Volume, error) { return volumeByID(ctx, db, id) },
		OnCronRun: func(cluster string, run *kubernetes.CronRun) {
			if c := crons(); c != nil {
				k.recordCronRun(c, cluster, run)
			}
		},
	})
	return k, nil
}

// registryHost is the registry's address for clusters when
// --registry-host is not given: the listener's, with the server's domain
// for an unspecified address.
func registryHost(a net.Addr, domain string) string {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	host := t.IP.String()
	if t.IP.IsUnspecified() {
		host = domain
	}
	return net.JoinHostPort(host, strconv.Itoa(t.Port))
}

// ready refuses clusters:add and clusters:set while the nodes could pull
// nothing: skiff serves no registry and the cluster has no external one,
// or the external one refuses skiff's credentials.
func (k *kube) ready(ctx context.Context, c *skiff.Cluster) error {
	if c.Registry != "" {
		if c.RegistryUsername == "" && len(c.RegistryPassword) == 0 {
			return nil // the credentials come next (clusters:set … registry), or it needs none: the first push tells
		}
		return external(c).Check(ctx, "skiff")
	}
	if k.server == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "skiff does not serve its images to clusters: start it with --registry-addr (where the clusters' nodes reach it), "+
			"--registry-cert and --registry-key (a certificate those nodes trust), and --registry-host if they know it by another name; "+
			"or add the cluster with --registry HOST/PATH, an external registry skiff pushes the images to")
	}
	return nil
}

// external is cluster c's external registry.
func external(c *skiff.Cluster) *registry.External {
	return &registry.External{Registry: c.Registry, Username: c.RegistryUsername, Password: string(c.RegistryPassword)}
}

// push copies spec's image to cluster c's external registry, by digest.
func (k *kube) push(ctx context.Context, c *skiff.Cluster, spec *skiff.InstanceSpec, progress func(string)) error {
	if c.Registry == "" {
		return nil
	}
	img, err := k.images.Image(spec.Image)
	if err != nil {
		return skiff.Errorf(skiff.ENOTFOUND, "the image of v%d is not on this server any more; push again", spec.Release)
	}
	_, err = external(c).Push(ctx, img, spec.AppName, progress)
	return err
}

// image is how cluster c runs spec's image: pulled by digest from c's
// external registry with its credentials, or from skiff's registry with
// the app's credentials for that cluster.
func (k *kube) image(_ context.Context, c *skiff.Cluster, spec *skiff.InstanceSpec) (*kubernetes.PodImage, error) {
	if k.server == nil && c.Registry == "" {
		return nil, k.ready(context.Background(), c)
	}
	img, err := k.images.Image(spec.Image)
	if err != nil {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "the image of v%d is not on this server any more; push again", spec.Release)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if c.Registry != "" {
		ext := external(c)
		pi, err := kubernetes.ImageFor(cf, ext.Ref(spec.AppName, spec.Image), spec)
		if err != nil {
			return nil, err
		}
		if ext.Username != "" || ext.Password != "" {
			pi.Registry = &kubernetes.Registry{Server: ext.Host(), Username: ext.Username, Password: ext.Password}
		}
		return pi, nil
	}
	pi, err := kubernetes.ImageFor(cf, registry.Reference(k.host, spec.AppID, spec.Image), spec)
	if err != nil {
		return nil, err
	}
	user, pass := registry.Credentials(c.Secret, c.Name, spec.AppID)
	pi.Registry = &kubernetes.Registry{Server: k.host, Username: user, Password: pass}
	return pi, nil
}

// recordCronRun keeps a cluster's cron run in the app's cron history.
func (k *kube) recordCronRun(c *cron.Scheduler, cluster string, run *kubernetes.CronRun) {
	ctx, cancel := context.WithTimeout(skiff.WithActor(context.Background(), &skiff.Actor{Name: "skiff"}), time.Minute)
	defer cancel()
	if run.ScheduledAt.IsZero() {
		return // not one of its CronJob's scheduled runs
	}
	cr := &skiff.CronRun{AppID: run.AppID, JobID: run.JobID, Release: run.Release, ScheduledAt: run.ScheduledAt,
		StartedAt: run.StartedAt, FinishedAt: run.FinishedAt, ExitCode: run.ExitCode, Status: skiff.CronSucceeded,
		Detail: fmt.Sprintf("ran on cluster %s as Job %s", cluster, run.Job)}
	if rel, err := k.db.FindRelease(ctx, run.AppID, run.Release); err == nil {
		if i := slices.IndexFunc(rel.Cron, func(j skiff.CronJob) bool { return j.ID == run.JobID }); i >= 0 {
			cr.Command = rel.Cron[i].Command
		}
	}
	if run.ExitCode != 0 || run.Reason != "" {
		cr.Status = skiff.CronFailed
	}
	if run.Reason != "" {
		cr.Detail += "; " + run.Reason
	}
	if err := c.RecordElsewhere(ctx, cr, run.Output); err != nil && skiff.ErrorCode(err) != skiff.ENOTFOUND {
		k.log.Error("record a cluster's cron run", "app", run.AppID, "job", run.JobID, "err", err)
	}
}

// close stops the registry and the clusters' schedulers; the apps keep
// running on the clusters.
func (k *kube) close(ctx context.Context) error {
	k.clusters.CloseAll()
	if k.server != nil {
		return k.server.Shutdown(ctx)
	}
	return nil
}

// regAccess is what the registry may serve: each cluster's secret, and
// the images of each app's releases.
type regAccess struct{ db *store.DB }

func (a regAccess) ClusterSecret(ctx context.Context, cluster string) ([]byte, error) {
	c, err := a.db.FindCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	return c.Secret, nil
}

func (a regAccess) AppImages(ctx context.Context, appID string) ([]string, error) {
	return a.db.AppImages(ctx, appID)
}

// volumeByID finds a volume by its id, for the clusters' schedulers.
func volumeByID(ctx context.Context, db interface {
	ListVolumes(context.Context) ([]*skiff.Volume, error)
}, id string) (*skiff.Volume, error) {
	list, err := db.ListVolumes(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range list {
		if v.ID == id {
			return v, nil
		}
	}
	return nil, skiff.Errorf(skiff.ENOTFOUND, "no volume %s", id)
}
