package skiff

import (
	"context"
	"regexp"
	"strings"
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
	Secret []byte `json:"-"`
	// IngressClass, when set, is the class of the Ingress skiff applies
	// per app with a web process (clusters:add --ingress-class, or
	// clusters:set NAME ingress-class): the cluster's ingress controller
	// then serves the app's hosts, for a cluster whose pod addresses
	// skiff's router cannot reach. "" (the default): skiff's router
	// serves them, balancing across the pods of the app's EndpointSlices.
	IngressClass string `json:"ingress_class,omitempty"`
	// StorageClass, when set, is the StorageClass of the claims skiff
	// makes for the apps' volumes (clusters:add --storage-class,
	// clusters:set NAME storage-class); "": the cluster's default class.
	// A claim keeps the class it was made with.
	StorageClass string `json:"storage_class,omitempty"`
	// Registry, when set, is an external registry (host[:port][/path],
	// clusters:set NAME registry) that skiff pushes each release's image
	// to, by digest, as <Registry>/<app>@sha256:…, and the cluster's
	// nodes pull it from with RegistryUsername and RegistryPassword (the
	// app's pull secret); "" is skiff's own registry (serve
	// --registry-addr). The credentials are kept like the kubeconfig and
	// never shown.
	Registry         string    `json:"registry,omitempty"`
	RegistryUsername string    `json:"-"`
	RegistryPassword []byte    `json:"-"`
	CreatedAt        time.Time `json:"created_at"`
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
	// UpdateCluster stores what clusters:set changes of c (its ingress
	// class, its registry and the registry's credentials); ENOTFOUND when
	// there is no cluster c.Name.
	UpdateCluster(ctx context.Context, c *Cluster) error
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

var ingressClassRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

// ValidateIngressClass checks the name of an IngressClass, as Kubernetes
// names objects (a DNS subdomain: lower-case letters, digits, '-' and
// '.', at most 253).
func ValidateIngressClass(name string) error {
	if !ingressClassRE.MatchString(name) || strings.Contains(name, "..") {
		return Errorf(EINVALID, "invalid ingress class %s: an IngressClass's name is up to 253 lower-case letters, digits, '-' and '.' (like nginx); `kubectl get ingressclass` lists the cluster's", quoteForUser(name))
	}
	return nil
}

// ValidateStorageClass checks the name of a StorageClass (a DNS
// subdomain, as for an IngressClass).
func ValidateStorageClass(name string) error {
	if !ingressClassRE.MatchString(name) || strings.Contains(name, "..") {
		return Errorf(EINVALID, "invalid storage class %s: a StorageClass's name is up to 253 lower-case letters, digits, '-' and '.' (like local-path); `kubectl get storageclass` lists the cluster's", quoteForUser(name))
	}
	return nil
}

var (
	registryHostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$`)
	repoPartRE     = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
)

// ValidateRegistry checks an external registry's reference as
// clusters:set NAME registry takes it: host[:port][/path], no scheme and
// no credentials (those go apart, never in a reference that is shown).
func ValidateRegistry(ref string) error {
	switch {
	case strings.Contains(ref, "@"):
		return Errorf(EINVALID, "the registry %s has credentials in it: give only host[:port][/path], the user with --username and the password on stdin", quoteForUser(redactUserinfo(ref)))
	case strings.Contains(ref, "://"):
		return Errorf(EINVALID, "the registry %s has a scheme: give host[:port][/path] (like registry.example.com/team); skiff always uses HTTPS", quoteForUser(ref))
	case len(ref) > 200:
		return Errorf(EINVALID, "the registry %s is over 200 characters", quoteForUser(ref))
	}
	host, path, hasPath := strings.Cut(ref, "/")
	if !registryHostRE.MatchString(host) || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return Errorf(EINVALID, "invalid registry %s: give host[:port][/path], the host a DNS name or address with a dot or a port (like registry.example.com/team)", quoteForUser(ref))
	}
	if hasPath {
		for _, part := range strings.Split(path, "/") {
			if !repoPartRE.MatchString(part) {
				return Errorf(EINVALID, "invalid registry %s: its path is lower-case letters, digits and single '.', '_' or '-' between them, parts joined by '/'", quoteForUser(ref))
			}
		}
	}
	return nil
}

// redactUserinfo hides what comes before an '@' (a password, say) in a
// reference that is to be shown.
func redactUserinfo(ref string) string {
	i := strings.LastIndex(ref, "@")
	if i < 0 {
		return ref
	}
	prefix := ""
	if j := strings.Index(ref, "://"); j >= 0 && j < i {
		prefix = ref[:j+3]
	}
	return prefix + "…" + ref[i:]
}
