// Package k8stestbed runs a real Kubernetes cluster on this machine for
// skiff's tests: kube-apiserver, kube-controller-manager, kube-scheduler and
// kubelet built from the k8s.io/kubernetes module (tools/kubernetes), etcd,
// containerd, runc and the CNI plugins from Debian's packages
// (scripts/k8s-testbed-build.sh builds and caches them all).
//
// Everything runs inside network namespaces of the test bed's own, in one
// cgroup tree of its own, with its files in one directory: Stop kills the
// tree, unbinds the namespaces and removes the directory, and Leftovers
// says what, if anything, is still on the host. The host's network,
// firewall, sysctls and /run are never touched (each node has a mount
// namespace with its own /run, /var/lib and /var/log).
//
// A cluster with no nodes is the quick tier: etcd and kube-apiserver only,
// ready in a few seconds, for applying manifests. With nodes it also runs
// the controller manager and the scheduler, and each node a containerd and
// a kubelet; pods run for real under runc.
//
// It needs root. Tests reach the cluster through DialContext, which opens
// sockets inside the cluster's network namespace.
package k8stestbed

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape a cluster.
type Options struct {
	// Nodes is how many kubelets run (0, 1 or 2). 0 is the quick tier:
	// etcd and the API server only.
	Nodes int
	// Log, when set, gets one line per step (the first build takes minutes).
	Log func(format string, args ...any)
	// FeatureGates are given to the API server and the kubelets as
	// --feature-gates ("PodLogsQuerySplitStreams=true"); "" for the
	// defaults, as most clusters run.
	FeatureGates string
}

// Cluster is a running test bed.
type Cluster struct {
	// Name is the cgroup tree's name, unique on the host.
	Name string
	// Dir holds every file the cluster has.
	Dir string
	// Server is the API server's URL, reachable through DialContext.
	Server string
	// NodeNames are the nodes' names, in order.
	NodeNames []string

	bin, root string // built binaries; unpacked Debian packages
	ca        *ca
	admin     pair
	nets      []string // network namespace files: net1, net2
	cmds      []*exec.Cmd
	waits     []chan struct{} // closed when each of cmds is reaped
	holders   []int           // pids holding each node's mount namespace
	logf      func(string, ...any)
	gates     string
	stopOnce  sync.Once
	stopErr   error
	client    *http.Client
}

var seq atomic.Int32

// Start builds what is missing (the first time: about ten minutes of two
// cores), then starts a cluster. On failure it stops what it started.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the Kubernetes test bed needs root")
	}
	if opts.Nodes < 0 || opts.Nodes > 2 {
		return nil, fmt.Errorf("nodes: %d; the test bed runs 0, 1 or 2", opts.Nodes)
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, root, err := Build(ctx, logf)
	if err != nil {
		return nil, err
	}
	sweep()
	name := fmt.Sprintf("skiff-tb%d-%d", os.Getpid(), seq.Add(1))
	// Short: containerd's and the shims' unix sockets live below it.
	dir, err := os.MkdirTemp("", "stb")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Name: name, Dir: dir, bin: bin, root: root, logf: logf, gates: opts.FeatureGates,
		Server: "https://" + node1IP + ":6443"}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.tails())
			if serr := c.Stop(); serr != nil {
				err = fmt.Errorf("%w; and stopping: %v", err, serr)
			}
			c = nil
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return c, err
	}
	for _, d := range []string{"pki", "logs", "etcd"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return c, err
		}
	}
	if err := makeCgroup(name + "/daemons"); err != nil {
		return c, err
	}
	c.nets = []string{filepath.Join(dir, "net1")}
	if err := touch(c.nets[0]); err != nil {
		return c, err
	}
	if err := firstNetns(c.nets[0]); err != nil {
		return c, err
	}
	if c.ca, err = newCA(); err != nil {
		return c, err
	}
	if c.admin, err = c.ca.issue("skiff-test-admin", []string{"system:masters"}); err != nil {
		return c, err
	}
	c.client = c.HTTPClient(c.admin)
	t0 := time.Now()
	if err := c.startControlPlane(ctx, opts.Nodes > 0); err != nil {
		return c, err
	}
	logf("control plane ready in %.1fs", time.Since(t0).Seconds())
	for n := 1; n <= opts.Nodes; n++ {
		t0 := time.Now()
		if err := c.addNode(ctx, n); err != nil {
			return c, fmt.Errorf("node %d: %w", n, err)
		}
		logf("node %s ready in %.1fs", c.NodeNames[n-1], time.Since(t0).Seconds())
	}
	return c, nil
}

// Build makes sure the binaries exist (running scripts/k8s-testbed-build.sh)
// and returns the directory of the Kubernetes binaries and the root of the
// unpacked Debian packages.
func Build(ctx context.Context, logf func(string, ...any)) (bin, root string, err error) {
	script, err := repoFile("scripts/k8s-testbed-build.sh")
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("%s: %v\n%s", script, err, tail(stderr.String(), 30))
	}
	if stderr.Len() > 0 {
		logf("%s(%.0fs)", stderr.String(), time.Since(t0).Seconds())
	}
	dir := strings.TrimSpace(string(out))
	return filepath.Join(dir, "bin"), filepath.Join(dir, "root"), nil
}

// repoFile finds rel in the skiff repository this package is built from.
func repoFile(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/skiffhq/skiff\n")) {
			return filepath.Join(dir, rel), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s: not inside the skiff repository", rel)
		}
		dir = parent
	}
}

// DialContext opens a connection inside the cluster's network (node 1's
// namespace, where the API server and the first node's pods are reached).
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, c.nets[0], network, addr)
}

// Listen listens inside the cluster's network: a service there (a registry)
// is reached by pods and kubelets.
func (c *Cluster) Listen(network, addr string) (net.Listener, error) {
	return listenIn(c.nets[0], network, addr)
}

// RegistryHost is where a test may serve a registry (Listen on it): every
// node trusts the test bed's CA for it.
const RegistryHost = node1IP + ":5443"

// ExternalRegistryHost is where a test may serve a second registry (one
// that stands for an external registry skiff pushes to), trusted alike.
const ExternalRegistryHost = node1IP + ":5444"

// NetNS is the file of the cluster's network namespace, for nsenter --net.
func (c *Cluster) NetNS() string { return c.nets[0] }

// HostIP is the address of node 1, where the API server listens; a service
// that Listen opened on it is reachable from every node and pod.
func (c *Cluster) HostIP() string { return node1IP }

// CA is the PEM of the cluster's certificate authority.
func (c *Cluster) CA() []byte { return c.ca.certPEM }

// AdminKubeconfig is a kubeconfig of a cluster administrator
// (system:masters).
func (c *Cluster) AdminKubeconfig() []byte { return kubeconfig(c.Server, "", c.ca.certPEM, c.admin) }

// UserKubeconfig is a kubeconfig of a user the cluster knows only by name
// and groups: it may do what RBAC grants it and nothing else.
func (c *Cluster) UserKubeconfig(user string, groups ...string) ([]byte, error) {
	p, err := c.ca.issue(user, groups)
	if err != nil {
		return nil, err
	}
	return kubeconfig(c.Server, "", c.ca.certPEM, p), nil
}

// IssueCert signs a serving certificate for the given names with the
// cluster's CA (which every node trusts for registries too).
func (c *Cluster) IssueCert(names ...string) (certPEM, keyPEM []byte, err error) {
	p, err := c.ca.issue(names[0], nil, names...)
	return p.cert, p.key, err
}

// HTTPClient is a client of the API server (or any TLS service the CA
// signed) inside the cluster's network, authenticating as user.
func (c *Cluster) HTTPClient(user pair) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca.certPEM)
	cert, _ := tls.X509KeyPair(user.cert, user.key)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     c.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
}

// get fetches an API path as the administrator into v.
func (c *Cluster) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// start runs a daemon of the cluster, logging to logs/<name>.log.
func (c *Cluster) start(name string, argv ...string) error {
	cmd, err := command(c.Name+"/daemons", filepath.Join(c.Dir, "logs", name+".log"), c.env(), argv...)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	c.cmds = append(c.cmds, cmd)
	done := make(chan struct{})
	c.waits = append(c.waits, done)
	go func() { _ = cmd.Wait(); close(done) }()
	return nil
}

// startIn runs a daemon inside network namespace ns.
func (c *Cluster) startIn(ns, name string, argv ...string) error {
	return c.start(name, append([]string{"nsenter", "--net=" + ns, "--"}, argv...)...)
}

// env is the daemons' environment: the unpacked packages' binaries first
// (containerd finds its shim and runc on PATH).
func (c *Cluster) env() []string {
	return []string{
		"PATH=" + filepath.Join(c.root, "usr/bin") + ":" + filepath.Join(c.root, "usr/sbin") + ":/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + c.Dir,
	}
}

// waitFor polls fn every 100ms until it succeeds, ctx ends or the
// timeout passes; the error names what was awaited and fn's last error.
func waitFor(ctx context.Context, what string, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills everything the cluster started and removes what it put on the
// host. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if err := killCgroup(c.Name); err != nil {
			errs = append(errs, err)
		}
		for _, done := range c.waits { // no zombie of ours is left either
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
		}
		for i := len(c.nets) - 1; i >= 0; i-- {
			if err := removeNetns(c.nets[i]); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, err)
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// Leftovers lists what the cluster left on the host after Stop (nothing,
// when all is well): cgroups, processes, mounts, its directory. A process
// killed by Stop may still be on its way out (its memory released, so no
// command line, but not yet a zombie) for a moment after its cgroup is
// gone: what is left is what is still there after a few seconds.
func (c *Cluster) Leftovers() []string {
	left := leftovers(c.Name, c.Dir)
	for deadline := time.Now().Add(10 * time.Second); len(left) > 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		left = leftovers(c.Name, c.Dir)
	}
	return left
}

// Logs is the tail of a daemon's log ("kube-apiserver", "kubelet-1" …).
func (c *Cluster) Logs(name string, lines int) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "logs", name+".log"))
	return tail(string(b), lines)
}

// tails is the end of every daemon's log, for a failure's message.
func (c *Cluster) tails() string {
	files, _ := filepath.Glob(filepath.Join(c.Dir, "logs", "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(f), tail(string(data), 8))
	}
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func touch(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}
