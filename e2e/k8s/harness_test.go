// Package k8s is the end-to-end tier of skiff on a Kubernetes cluster: a
// real cluster of one node (internal/k8stestbed), and the real skiff
// daemon, git and OpenSSH clients. The daemon runs inside the cluster's
// network namespace, as a skiff server that reaches its cluster's API and
// pods does; the tests reach it there (nsenter for ssh and git, a dialer
// into the namespace for HTTP). Every test shares the one cluster and the
// one daemon, one after another.
package k8s

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/skiffhq/skiff/internal/e2etest"
	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/internal/testslot"
)

// debootstrapCache is the one the other tiers use.
const debootstrapCache = "/var/cache/skiff-test/debootstrap"

var (
	bin      string // the directory of skiff and its helpers
	skiffBin string
	bed      struct {
		once    sync.Once
		err     error
		cluster *k8stestbed.Cluster
		d       *daemon
		admin   *user
	}
)

func TestMain(m *testing.M) {
	code := 0
	if os.Geteuid() == 0 {
		code = build()
	}
	if code == 0 {
		code = m.Run()
	}
	if bed.d != nil {
		bed.d.stop()
		bed.d.teardown()
		bed.d.remove()
	}
	if bed.cluster != nil {
		if err := bed.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the test bed:", err)
			code = 1
		}
		if left := bed.cluster.Leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "the test bed left on the host:\n%s\n", strings.Join(left, "\n"))
			code = 1
		}
	}
	if bin != "" {
		os.RemoveAll(bin)
	}
	os.Exit(code)
}

// build makes skiff as `make build` does, into a scratch directory.
func build() int {
	var err error
	if bin, err = os.MkdirTemp("", "skiff-k8s-bin"); err != nil {
		panic(err)
	}
	if skiffBin, err = e2etest.Build(bin, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// onCluster returns the shared daemon, its admin, and the cluster, made
// the first time: the cluster, the default builder (made by the daemon on
// the host's network, where Debian's mirror is), then the daemon inside
// the cluster's network serving its registry to the node, and the cluster
// added as skiff's user with exactly the grants of clusters:rbac.
func onCluster(t *testing.T) (*daemon, *user, *k8stestbed.Cluster) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a Kubernetes cluster, and apps built under runc")
	}
	for _, tool := range []string{"runc", "debootstrap", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	if testing.Short() {
		t.Skip("builds apps and runs a cluster: not in -short mode")
	}
	bed.once.Do(func() { bed.err = setUp(t) })
	if bed.err != nil {
		t.Fatal(bed.err)
	}
	mark := bed.d.log.Len()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log during the test:\n%s", tailLines(bed.d.log.String()[mark:], 150))
		}
	})
	return bed.d, bed.admin, bed.cluster
}

func setUp(t *testing.T) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	c, err := k8stestbed.Start(ctx, k8stestbed.Options{Nodes: 1, Log: t.Logf})
	if err != nil {
		return err
	}
	bed.cluster = c
	t.Logf("cluster up in %.1fs", time.Since(start).Seconds())
	dir, err := os.MkdirTemp("", "skiff-k8s-e2e-")
	if err != nil {
		return err
	}
	// Sandboxed processes reach their root file systems below the data
	// directory: its parents must be traversable.
	os.Chmod(dir, 0o711)
	// Its names and pool: a slot of the host no other test process holds
	// (internal/testslot); it builds on the host's network.
	slot, err := testslot.Get("e2e-k8s")
	if err != nil {
		return err
	}
	d := &daemon{dir: dir, data: filepath.Join(dir, "data"), log: new(buffer),
		prefix: "k" + slot.Tag(), pool: slot.Pool().String()}
	bed.d = d
	base := []string{"--resource-prefix", d.prefix, "--network-pool", d.pool, "--debootstrap-cache", debootstrapCache, "--acme-ca", ""}

	// The builder, on the host's network.
	if err := d.start("", base...); err != nil {
		return err
	}
	admin := newKey(dir, "admin")
	if r := d.local(admin.authorizedKey()+"\n", "keys:add", "admin", "--admin"); r.code != 0 {
		return fmt.Errorf("keys:add: %s", r)
	}
	bed.admin = admin
	t0 := time.Now()
	if r := d.local("", "builder:create"); r.code != 0 {
		return fmt.Errorf("builder:create: %s\n%s", r, d.log)
	}
	t.Logf("builder:create took %.0fs", time.Since(t0).Seconds())
	d.stop()
	d.teardown()

	// The daemon in the cluster's network, serving the registry at the
	// address every node trusts the test bed's CA for.
	certPEM, keyPEM, err := c.IssueCert(c.HostIP())
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(dir, "registry.crt"), filepath.Join(dir, "registry.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	d.netns = c.NetNS()
	d.args = append(base, "--registry-addr", k8stestbed.RegistryHost, "--registry-cert", certFile, "--registry-key", keyFile)
	// It trusts the test bed's CA, as a server trusts the CA of the
	// external registry it pushes to (TestExternalRegistry).
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, c.CA(), 0o600); err != nil {
		return err
	}
	d.env = []string{"SSL_CERT_FILE=" + caFile}
	if err := d.start(d.netns, d.args...); err != nil {
		return err
	}
	// skiff's user on the cluster has what clusters:rbac says, no more.
	rbac := d.local("", "clusters:rbac")
	if rbac.code != 0 {
		return fmt.Errorf("clusters:rbac: %s", rbac)
	}
	if err := applyRBAC(ctx, c, []byte(rbac.stdout)); err != nil {
		return err
	}
	kc, err := c.UserKubeconfig("skiff")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "skiff.kubeconfig"), kc, 0o600); err != nil {
		return err
	}
	if r := d.local(string(kc), "clusters:add", "tb"); r.code != 0 {
		return fmt.Errorf("clusters:add: %s", r)
	}
	t.Logf("skiff on the cluster, set up in %.0fs", time.Since(start).Seconds())
	return nil
}

// daemon is `skiff serve`, on the host's network or inside a namespace.
type daemon struct {
	dir, data    string
	prefix, pool string
	netns        string   // "" for the host's network
	args         []string // the flags it runs with in netns
	env          []string // more of its environment
	cmd          *exec.Cmd
	exited       chan struct{}
	log          *buffer
	addr         e2etest.Ready
}

// start starts the daemon in network namespace ns ("" for the host's).
func (d *daemon) start(ns string, args ...string) error {
	argv := append([]string{skiffBin}, e2etest.ServeArgs(d.data, args...)...)
	if ns != "" {
		argv = append([]string{"nsenter", "--net=" + ns, "--"}, argv...) // nsenter execs skiff: the pid is skiff's
	}
	os.Remove(filepath.Join(d.data, "ready.json"))
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, d.env...)
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.exited)
	addr, err := e2etest.WaitReady(d.data, 2*time.Minute, d.exited)
	if err != nil {
		return fmt.Errorf("%w:\n%s", err, d.log)
	}
	d.addr = addr
	return nil
}

// stop stops the daemon as systemd does (SIGTERM).
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// kill9 kills the daemon the hard way.
// killMidRollout sets a config var of app (a new release) and kill -9s the
// daemon once the release's rollout is under way (a pod scheduled); it
// returns what config:set printed until then.
func killMidRollout(t *testing.T, d *daemon, admin *user, app string) string {
	t.Helper()
	argv := append(append(d.sshArgv(admin), "skiff@127.0.0.1", "--"), "config:set", app, "GREETING=late")
	cmd := exec.Command(argv[0], argv[1:]...)
	var out buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rollout under way", 60*time.Second, func() error {
		if !strings.Contains(out.String(), "scheduled on") {
			return errorf("config:set so far:\n%s", out.String())
		}
		return nil
	})
	d.kill9()
	cmd.Wait()
	return out.String()
}

func (d *daemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.cmd = nil
}

// teardown removes what the daemon put on the host (or in its namespace).
func (d *daemon) teardown() {
	argv := append([]string{skiffBin}, e2etest.TeardownArgs(d.data, d.prefix, d.pool)...)
	if d.netns != "" {
		argv = append([]string{"nsenter", "--net=" + d.netns, "--"}, argv...)
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "teardown: %v\n%s", err, out)
	}
}

// remove deletes the daemon's directory (gigabytes: its builder and
// images) once teardown left nothing mounted in it.
func (d *daemon) remove() {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil || bytes.Contains(mounts, []byte(" "+d.dir+"/")) {
		fmt.Fprintf(os.Stderr, "%s still has mounts after teardown: left in place\n", d.dir)
		return
	}
	if err := os.RemoveAll(d.dir); err != nil {
		fmt.Fprintln(os.Stderr, "remove the daemon's directory:", err)
	}
}

// result is what a command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

func run(cmd *exec.Cmd, stdin string) result {
	r, err := e2etest.Run(cmd, stdin)
	if err != nil {
		return result{stdout: r.Stdout, stderr: err.Error(), code: -1}
	}
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
}

// local runs `skiff --data DIR args…` on the server (the control socket
// is a file: no namespace to enter).
func (d *daemon) local(stdin string, args ...string) result {
	return run(exec.Command(skiffBin, append([]string{"--data", d.data}, args...)...), stdin)
}

func (d *daemon) port() string {
	_, port, _ := net.SplitHostPort(d.addr.SSH)
	return port
}

// sshArgv is the OpenSSH client inside the daemon's namespace.
func (d *daemon) sshArgv(u *user) []string {
	return append([]string{"nsenter", "--net=" + d.netns, "--", "ssh"}, e2etest.SSHOptions(u.keyPath, d.port(), filepath.Join(d.dir, "known_hosts"))...)
}

// ssh runs a command over SSH with the real OpenSSH client.
func (d *daemon) ssh(u *user, args ...string) result {
	argv := append(append(d.sshArgv(u), "skiff@127.0.0.1", "--"), args...)
	return run(exec.Command(argv[0], argv[1:]...), "")
}

// git runs git in dir as the user, over skiff's SSH server.
func (d *daemon) git(u *user, dir string, args ...string) result {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(d.dir, strings.Join(d.sshArgv(u), " "))
	return run(cmd, "")
}

func (d *daemon) remote(app string) string { return "ssh://skiff@127.0.0.1:" + d.port() + "/" + app }

// dial opens an x/crypto SSH client to the daemon.
func (d *daemon) dial(u *user) (*gossh.Client, error) {
	conn, err := bed.cluster.DialContext(context.Background(), "tcp", d.addr.SSH)
	if err != nil {
		return nil, err
	}
	cc, chans, reqs, err := gossh.NewClientConn(conn, d.addr.SSH, &gossh.ClientConfig{User: "skiff",
		Auth: []gossh.AuthMethod{gossh.PublicKeys(u.signer)}, HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return gossh.NewClient(cc, chans, reqs), nil
}

// get fetches a path through the daemon's router with an app's Host.
func (d *daemon) get(app, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+d.addr.HTTP+path, nil)
	req.Host = app + ".skiff.test"
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: bed.cluster.DialContext, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

var gitEnv = e2etest.GitEnv

// repo makes a work tree with one commit of files on main.
func repo(t *testing.T, files map[string]string) string { return e2etest.Repo(t, files) }

// write commits files (name → content) in a work tree.
func write(t *testing.T, dir string, files map[string]string, msg string) {
	t.Helper()
	e2etest.Commit(t, dir, files, msg)
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	e2etest.Git(t, dir, args...)
}

// user is an SSH identity with its key on disk.
type user struct {
	keyPath string
	signer  gossh.Signer
}

func newKey(dir, name string) *user {
	k, err := e2etest.NewKey(dir, name)
	if err != nil {
		panic(err)
	}
	return &user{keyPath: k.Path, signer: k.Signer}
}

func (u *user) authorizedKey() string { return e2etest.AuthorizedKey(u.signer) }

// buffer is a bytes.Buffer safe for one writer and readers.
type buffer = e2etest.Buffer

var tailLines = e2etest.TailLines
