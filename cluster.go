package skiff

import (
	"context"
	"regexp"
	"time"
)

// Cluster is a Kubernetes cluster an admin added (clusters:add), where
// apps may run instead of on this server (scheduler:set APP k8s --cluster
// NAME). skiff keeps building on this server; the cluster pulls the
// images from skiff's registry.
type Cluster struct {
	Name string `json:"name"`
	// Kubeconfig is how skiff reaches the cluster's API: a credential,
	// kept in the database (0600) and never shown.
	Kubeconfig []byte `json:"-"`
	// Namespace, when set, is the one namespace every app lives in (the
	// cluster was added with --namespace, for a skiff that may act in
	// that namespace only); "" gives each app a namespace of its own.
	Namespace string `json:"namespace,omitempty"`
	// Server is the API's URL and Version the cluster's Kubernetes
	// version, as they were when it was added.
	Server  string `json:"server"`
	Version string `json:"version"`
	// Secret derives the credentials that the cluster's nodes pull the
	// apps' images with (one per app); never shown.
	Secret    []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// ClusterService stores the clusters.
type ClusterService interface {
	// CreateCluster stores a cluster; ECONFLICT when the name is taken.
	CreateCluster(ctx context.Context, c *Cluster) error
	// Clusters lists the clusters by name.
	Clusters(ctx context.Context) ([]*Cluster, error)
	// FindCluster returns the cluster; ENOTFOUND when there is none.
	FindCluster(ctx context.Context, name string) (*Cluster, error)
	// DeleteCluster forgets a cluster; ENOTFOUND when there is none.
	DeleteCluster(ctx context.Context, name string) error
}

// Clusters connects skiff to Kubernetes clusters.
type Clusters interface {
	// Check connects to the cluster c describes and tells at once whether
	// skiff can work with it: its API answers, skiff has every grant of
	// RBAC (in c.Namespace, or cluster-wide), the namespace exists. It
	// returns the API's URL and the cluster's version; EINVALID with what
	// to do otherwise.
	Check(ctx context.Context, c *Cluster) (server, version string, err error)
	// Scheduler returns the scheduler of a stored cluster, opened on
	// first use and kept; ENOTFOUND for a cluster skiff does not know.
	// The IDs of its instances start with the cluster's name and "/"
	// (this server's never have a "/"), so that an ID names its cluster.
	Scheduler(ctx context.Context, name string) (Scheduler, error)
	// Close closes a removed cluster's scheduler; what runs there keeps
	// running.
	Close(name string)
	// RBAC is what a cluster must grant skiff (clusters:rbac): a
	// ClusterRole and its binding, as YAML for kubectl apply.
	RBAC() []byte
}

var clusterNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,29}$`)

// ValidateClusterName checks a cluster's name: it prefixes the IDs of the
// processes that run there.
func ValidateClusterName(name string) error {
	if !clusterNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid cluster name %s: use up to 30 lower-case letters, digits and hyphens, starting with a letter (like prod)", quoteForUser(name))
	}
	return nil
}
