package admin

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/skiffhq/skiff"
)

// Clusters: Kubernetes clusters an admin adds, where apps may run instead
// of on this server (scheduler:set).

func clusterCommands() []*command {
	return []*command{
		{name: "clusters:list", aliases: []string{"clusters"}, summary: "list the Kubernetes clusters apps may run on (admin)", format: true, admin: true, max: 0, run: clustersList},
		{name: "clusters:add", args: "<name>", summary: "add a Kubernetes cluster from a kubeconfig on stdin, checked at once (admin)", admin: true, min: 1, max: 1, run: clustersAdd,
			flags: []flag{{name: "namespace", value: "NS", help: "keep every app in this one namespace (where skiff's grants are) instead of a namespace per app"},
				{name: "ingress-class", value: "CLASS", help: "serve the apps' traffic with an Ingress of this class (for a cluster whose pods skiff's router cannot reach)"},
				{name: "registry", value: "HOST/PATH", help: "push the apps' images to this external registry for the nodes to pull (its credentials: clusters:set NAME registry)"},
				{name: "storage-class", value: "CLASS", help: "the StorageClass of the apps' volumes (default: the cluster's default class)"}},
			help: "Reads a kubeconfig (its current context) from stdin and checks at once that the API answers, that it\n" +
				"grants skiff everything of `clusters:rbac` (cluster-wide, or in --namespace) and that the namespace exists:\n" +
				"  skiff clusters:rbac | kubectl apply -f -     # as the cluster's admin; binds the user \"skiff\"\n" +
				"  skiff clusters:add prod < skiff.kubeconfig\n" +
				"The nodes pull the apps' images from skiff's registry (skiff serve --registry-addr …): they must reach it\n" +
				"and trust its certificate. By default skiff's router serves the apps' domains and balances across their pods,\n" +
				"which it must reach; --ingress-class CLASS applies an Ingress of that class per app instead (point the\n" +
				"domains at the cluster's ingress controller; TLS is the cluster's)."},
		{name: "clusters:set", args: "<name> ingress-class [CLASS] | registry [HOST/PATH] [--username USER] | storage-class [CLASS]", summary: "change a cluster: how traffic reaches its apps, where its nodes pull their images, the class of their volumes (admin)", admin: true, min: 2, max: 3, run: clustersSet,
			flags: []flag{{name: "username", value: "USER", help: "the registry's user; the password is read from stdin"}},
			help: "  clusters:set prod ingress-class nginx    # an Ingress of class nginx per app; the router serves them no more\n" +
				"  clusters:set prod ingress-class          # back to skiff's router (the Ingresses are removed)\n" +
				"  clusters:set prod registry registry.example.com/team --username bob < password\n" +
				"                                           # push each release's image there by digest (<registry>/<app>@sha256:…);\n" +
				"                                           # the nodes pull it with these credentials (the app's pull secret)\n" +
				"  clusters:set prod registry               # back to skiff's own registry (serve --registry-addr)\n" +
				"  clusters:set prod storage-class fast-ssd # the class of the apps' volumes made from now on (a volume's\n" +
				"                                           # claim keeps its class); without CLASS: the cluster's default\n" +
				"The password is read from stdin, never from the command line, and never shown; skiff checks at once that\n" +
				"it may push there.\n" +
				"The cluster is checked again (an Ingress needs the ingresses grant of `clusters:rbac`), then every app on it\n" +
				"is applied again with the change."},
		{name: "clusters:remove", args: "<name>", summary: "forget a cluster that no app runs on (admin)", admin: true, min: 1, max: 1, run: clustersRemove},
		{name: "clusters:rbac", summary: "print the RBAC a cluster must grant skiff, for kubectl apply (admin)", admin: true, max: 0, run: clustersRBAC},
		{name: "scheduler:set", args: "<app> local|k8s", summary: "run the app on this server (local) or on a Kubernetes cluster (k8s --cluster NAME) (admin)", app: true, admin: true, min: 2, max: 2, run: schedulerSet,
			flags: []flag{{name: "cluster", value: "NAME", help: "the cluster (`clusters` lists them; needed when there are several)"}},
			help: "The current release starts where the app goes and takes the traffic once ready; then everything skiff\n" +
				"made for the app where it ran is removed. If it does not become ready there, nothing changes.\n" +
				"Only an admin moves apps: a cluster's capacity (and what runs on it) is the admin's to give."},
		{name: "scheduler:report", aliases: []string{"scheduler"}, args: "<app>", summary: "show where the app runs", format: true, app: true, min: 1, max: 1, run: schedulerReport},
	}
}

func (c *call) needClusters() error {
	if c.services().ClusterStore == nil || c.services().Clusters == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no apps, so none on a cluster either")
	}
	return nil
}

// maxKubeconfig caps what clusters:add reads.
const maxKubeconfig = 1 << 20

func clustersList(c *call) error {
	if err := c.needClusters(); err != nil {
		return err
	}
	list, err := c.services().ClusterStore.Clusters(c.ctx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.stderr(), "No clusters; add one with clusters:add NAME < kubeconfig.")
		return nil
	}
	rows := make([][]string, len(list))
	for i, cl := range list {
		ns := "one per app"
		if cl.Namespace != "" {
			ns = cl.Namespace
		}
		reg := "skiff's"
		if cl.Registry != "" {
			reg = cl.Registry
		}
		rows[i] = []string{cl.Name, cl.Server, cl.Version, ns, trafficText(cl.IngressClass), reg, formatTime(cl.CreatedAt)}
	}
	c.table([]string{"NAME", "API", "VERSION", "NAMESPACE", "TRAFFIC", "REGISTRY", "ADDED"}, rows)
	return nil
}

func clustersAdd(c *call) error {
	if err := c.needClusters(); err != nil {
		return err
	}
	name := c.args[0]
	if err := skiff.ValidateClusterName(name); err != nil {
		return err
	}
	ns := c.value("namespace")
	if ns != "" && !isDNSLabel(ns) {
		return skiff.Errorf(skiff.EINVALID, "invalid namespace %s: a Kubernetes namespace is up to 63 lower-case letters, digits and hyphens", quoteArg(ns))
	}
	class := c.value("ingress-class")
	if c.flag("ingress-class") {
		if err := skiff.ValidateIngressClass(class); err != nil {
			return err
		}
	}
	reg := c.value("registry")
	if c.flag("registry") {
		if err := skiff.ValidateRegistry(reg); err != nil {
			return err
		}
	}
	storage := c.value("storage-class")
	if c.flag("storage-class") {
		if err := skiff.ValidateStorageClass(storage); err != nil {
			return err
		}
	}
	if c.inv.Stdin == nil {
		return skiff.Errorf(skiff.EINVALID, "no kubeconfig on stdin: skiff clusters:add %s < kubeconfig", name)
	}
	data, err := io.ReadAll(io.LimitReader(bufio.NewReader(c.inv.Stdin), maxKubeconfig+1))
	if err != nil {
		return fmt.Errorf("read the kubeconfig: %w", err)
	}
	if len(data) > maxKubeconfig {
		return skiff.Errorf(skiff.EINVALID, "the kubeconfig is over %d KiB", maxKubeconfig>>10)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return skiff.Errorf(skiff.EINVALID, "no kubeconfig on stdin: skiff clusters:add %s < kubeconfig", name)
	}
	c.progress("Checking cluster %s: its API, skiff's grants, the namespace", name)
	cl := &skiff.Cluster{Name: name, Kubeconfig: data, Namespace: ns, IngressClass: class, Registry: reg, StorageClass: storage}
	if err := c.services().Deployer.AddCluster(c.ctx, cl); err != nil {
		return err
	}
	where := "a namespace per app"
	if ns != "" {
		where = "namespace " + ns
	}
	c.progress("Added cluster %s: %s, Kubernetes %s, apps in %s, traffic through %s", name, cl.Server, cl.Version, where, trafficText(class))
	if reg != "" {
		fmt.Fprintf(c.stderr(), "       Give skiff the registry's credentials with: clusters:set %s registry %s --username USER < password\n", name, reg)
	}
	fmt.Fprintf(c.stderr(), "       Move an app there with: scheduler:set <app> k8s --cluster %s\n", name)
	return nil
}

// trafficText names a cluster's traffic mode.
func trafficText(class string) string {
	if class == "" {
		return "skiff's router"
	}
	return "ingress " + class
}

func clustersSet(c *call) error {
	if err := c.needClusters(); err != nil {
		return err
	}
	name, key := c.args[0], c.args[1]
	if err := skiff.ValidateClusterName(name); err != nil {
		return err
	}
	switch key {
	case "registry":
		return clustersSetRegistry(c, name)
	case "storage-class":
		return clustersSetStorageClass(c, name)
	case "ingress-class":
	default:
		return &usageError{cmd: c.cmd, msg: fmt.Sprintf("%s is not a cluster setting: use ingress-class, registry or storage-class", quoteArg(key))}
	}
	if c.flag("username") {
		return &usageError{cmd: c.cmd, msg: "--username goes with registry"}
	}
	class := ""
	if len(c.args) == 3 {
		class = c.args[2]
		if err := skiff.ValidateIngressClass(class); err != nil {
			return err
		}
	}
	c.progress("Checking cluster %s for traffic through %s", name, trafficText(class))
	err := c.services().Deployer.ConfigureCluster(c.ctx, name, func(cl *skiff.Cluster) error {
		cl.IngressClass = class
		return nil
	}, c.stderr())
	if err != nil {
		return err
	}
	c.progress("Cluster %s: traffic through %s", name, trafficText(class))
	if class != "" {
		fmt.Fprintf(c.stderr(), "       Point the apps' domains at the cluster's ingress controller of class %s; TLS for them is the cluster's.\n", class)
	}
	return nil
}

// maxPassword caps the registry password clusters:set reads.
const maxPassword = 16 << 10

// clustersSetRegistry is clusters:set NAME registry [HOST/PATH]
// [--username USER] < password.
func clustersSetRegistry(c *call, name string) error {
	ref, user := "", c.value("username")
	if len(c.args) == 3 {
		ref = c.args[2]
		if err := skiff.ValidateRegistry(ref); err != nil {
			return err
		}
	} else if c.flag("username") {
		return &usageError{cmd: c.cmd, msg: "--username goes with a registry: clusters:set NAME registry HOST/PATH --username USER < password"}
	}
	if strings.ContainsAny(user, ":\n\r\x00") || len(user) > 255 {
		return skiff.Errorf(skiff.EINVALID, "invalid registry user %s", quoteArg(user))
	}
	var password []byte
	if c.flag("username") {
		if user == "" {
			return skiff.Errorf(skiff.EINVALID, "--username is empty; leave it out for a registry that needs no credentials")
		}
		if c.inv.Stdin != nil {
			data, err := io.ReadAll(io.LimitReader(c.inv.Stdin, maxPassword+1))
			if err != nil {
				return fmt.Errorf("read the password: %w", err)
			}
			if len(data) > maxPassword {
				return skiff.Errorf(skiff.EINVALID, "the password on stdin is over %d KiB", maxPassword>>10)
			}
			password = []byte(strings.TrimRight(string(data), "\r\n"))
		}
		if len(password) == 0 {
			return skiff.Errorf(skiff.EINVALID, "no password on stdin: clusters:set %s registry %s --username %s < password-file", name, ref, user)
		}
	}
	if ref == "" {
		c.progress("Checking cluster %s for images from skiff's own registry", name)
	} else {
		c.progress("Checking that skiff may push to %s", ref)
	}
	err := c.services().Deployer.ConfigureCluster(c.ctx, name, func(cl *skiff.Cluster) error {
		cl.Registry, cl.RegistryUsername, cl.RegistryPassword = ref, user, password
		return nil
	}, c.stderr())
	if err != nil {
		return err
	}
	if ref == "" {
		c.progress("Cluster %s: its nodes pull from skiff's registry", name)
	} else {
		c.progress("Cluster %s: skiff pushes the images to %s, its nodes pull them from there", name, ref)
	}
	return nil
}

func clustersRemove(c *call) error {
	if err := c.needClusters(); err != nil {
		return err
	}
	if err := c.services().Deployer.RemoveCluster(c.ctx, c.args[0]); err != nil {
		return err
	}
	c.progress("Removed cluster %s (skiff no longer reaches it; nothing on it was changed)", c.args[0])
	return nil
}

func clustersRBAC(c *call) error {
	if err := c.needClusters(); err != nil {
		return err
	}
	_, err := c.stdout().Write(c.services().Clusters.RBAC())
	return err
}

func schedulerSet(c *call) error {
	if err := c.needScheduler(); err != nil {
		return err
	}
	cluster := c.value("cluster")
	switch c.args[0] {
	case "local":
		if cluster != "" {
			return &usageError{cmd: c.cmd, msg: "--cluster goes with k8s: scheduler:set APP k8s --cluster NAME"}
		}
	case "k8s", "kubernetes":
		if err := c.needClusters(); err != nil {
			return err
		}
		if cluster == "" {
			list, err := c.services().ClusterStore.Clusters(c.ctx)
			if err != nil {
				return err
			}
			switch len(list) {
			case 0:
				return skiff.Errorf(skiff.EINVALID, "there is no cluster yet; an admin adds one with clusters:add")
			case 1:
				cluster = list[0].Name
			default:
				var names []string
				for _, cl := range list {
					names = append(names, cl.Name)
				}
				return skiff.Errorf(skiff.EINVALID, "say which cluster with --cluster: %s", strings.Join(names, ", "))
			}
		}
	default:
		return &usageError{cmd: c.cmd, msg: fmt.Sprintf("%s is not a scheduler: use local or k8s", quoteArg(c.args[0]))}
	}
	if err := c.services().Deployer.SetScheduler(c.ctx, c.app, cluster, c.stderr()); err != nil {
		return err
	}
	return schedulerReport(c)
}

type schedulerView struct {
	Scheduler string `json:"scheduler"` // local or k8s
	Cluster   string `json:"cluster,omitempty"`
	Server    string `json:"server,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Traffic is how requests reach the app there: "router" (skiff's) or
	// "ingress <class>"; Registry where its nodes pull its images from.
	Traffic  string `json:"traffic,omitempty"`
	Registry string `json:"registry,omitempty"`
}

func schedulerReport(c *call) error {
	s, err := c.settings()
	if err != nil {
		return err
	}
	v := schedulerView{Scheduler: "local"}
	if s.Cluster != "" {
		v.Scheduler, v.Cluster, v.Namespace = "k8s", s.Cluster, "skiff-"+c.app.ID
		if c.services().ClusterStore != nil {
			if cl, err := c.services().ClusterStore.FindCluster(c.ctx, s.Cluster); err == nil {
				v.Server = cl.Server
				if cl.Namespace != "" {
					v.Namespace = cl.Namespace
				}
				v.Traffic, v.Registry = "router", "skiff"
				if cl.IngressClass != "" {
					v.Traffic = "ingress " + cl.IngressClass
				}
				if cl.Registry != "" {
					v.Registry = cl.Registry
				}
			}
		}
	}
	if c.json() {
		return c.writeJSON(v)
	}
	c.section(c.app.Name + " scheduler")
	if v.Cluster == "" {
		c.fields("Scheduler", "local (this server)")
		return nil
	}
	traffic, registry := "skiff's router", "skiff's"
	if v.Traffic != "router" && v.Traffic != "" {
		traffic = "Ingress of class " + strings.TrimPrefix(v.Traffic, "ingress ")
	}
	if v.Registry != "skiff" && v.Registry != "" {
		registry = v.Registry
	}
	c.fields("Scheduler", "k8s", "Cluster", v.Cluster, "API", v.Server, "Namespace", v.Namespace, "Traffic", traffic, "Registry", registry)
	return nil
}

// isDNSLabel reports whether s is a DNS label as Kubernetes names
// namespaces.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// clustersSetStorageClass is clusters:set NAME storage-class [CLASS]: the
// class of the claims made from now on for the apps' volumes there.
func clustersSetStorageClass(c *call, name string) error {
	if c.flag("username") {
		return &usageError{cmd: c.cmd, msg: "--username goes with registry"}
	}
	class := ""
	if len(c.args) == 3 {
		class = c.args[2]
		if err := skiff.ValidateStorageClass(class); err != nil {
			return err
		}
	}
	text := "the cluster's default class"
	if class != "" {
		text = "class " + class
	}
	err := c.services().Deployer.ConfigureCluster(c.ctx, name, func(cl *skiff.Cluster) error {
		cl.StorageClass = class
		return nil
	}, c.stderr())
	if err != nil {
		return err
	}
	c.progress("Cluster %s: new volumes' claims of %s (a claim made before keeps its class)", name, text)
	return nil
}
