package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/e2etest"
	"github.com/skiffhq/skiff/internal/registrytest"
	"github.com/skiffhq/skiff/internal/testguard"
	"github.com/skiffhq/skiff/internal/testslot"
)

// The full daemon builds and runs apps: it needs root, runc and
// debootstrap. Its tests share one daemon (making the default builder
// takes a while even from debootstrap's cache) and run one after another;
// each test uses apps of its own.

// debootstrapCache is shared with the build package's tests, so a CI run
// makes the Debian root file systems once.
const debootstrapCache = "/var/cache/skiff-test/debootstrap"

var (
	// fullRegistry is an OCI registry on loopback the shared daemon may
	// pull builders from.
	fullRegistry *httptest.Server
	fullOnce     sync.Once
	fullShared   *daemon
	fullErr      error
	fullMu       sync.Mutex
)

// requireFull skips unless the machine can build and run apps.
func requireFull(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds and runs apps under runc")
	}
	for _, tool := range []string{"runc", "debootstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/install-deps.sh installs it)", tool)
		}
	}
	if testing.Short() {
		t.Skip("builds apps: not in -short mode")
	}
}

// fullDaemon returns the shared daemon that builds and runs apps, with the
// default builder made, and holds it for the test (its tests take turns).
func fullDaemon(t *testing.T) (*daemon, *user) {
	t.Helper()
	requireFull(t)
	fullMu.Lock()
	t.Cleanup(fullMu.Unlock)
	fullOnce.Do(func() { fullShared, fullErr = startFullDaemon() })
	if fullErr != nil {
		t.Fatal(fullErr)
	}
	d := *fullShared
	d.t = t
	mark := fullShared.log.Len()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log during the test:\n%s", fullShared.log.String()[mark:])
		}
	})
	admin := &user{name: "admin", keyPath: filepath.Join(d.dir, "admin.key")}
	admin.signer = loadSigner(t, admin.keyPath)
	return &d, admin
}

// startFullDaemon starts the shared daemon outside any one test: it lives
// until the test binary exits (TestMain stops it).
func startFullDaemon() (*daemon, error) {
	dir, err := os.MkdirTemp("", "skiff-e2e-full-")
	if err != nil {
		return nil, err
	}
	// Sandboxed processes run as unprivileged ids and reach their root
	// file systems below the data directory: its parents must be
	// traversable, as /var/lib is.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer)}
	// A registry the tests push builders to, which builder:set may pull
	// from although it is on loopback. Its blobs, and those being pushed,
	// are kept on disk: builders are hundreds of megabytes, and in memory
	// they made the test binary's resident size grow past 8 GB.
	reg, err := registrytest.OnDisk(filepath.Join(dir, "registry"))
	if err != nil {
		return nil, err
	}
	fullRegistry = httptest.NewServer(reg)
	hr := hostResources(0)
	d.cmd = exec.Command(skiffBin, e2etest.ServeArgs(d.data, "--resource-prefix", hr.prefix, "--network-pool", hr.pool,
		"--debootstrap-cache", debootstrapCache, "--acme-ca", "", "--allow-registry", fullRegistry.Listener.Addr().String())...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	guardDaemon(d.cmd, d.data)
	testguard.Remove(dir)
	fullStop = func() {
		fullRegistry.Close()
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.cmd.Wait()
		// Nothing of the shared daemon may outlive the tests.
		if out, err := exec.Command(skiffBin, e2etest.TeardownArgs(d.data, hr.prefix, hr.pool)...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: teardown: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	}
	if d.addr, err = e2etest.WaitReady(d.data, 60*time.Second, nil); err != nil {
		return nil, fmt.Errorf("full daemon: %v:\n%s", err, d.log)
	}
	admin := newKeyAt(dir, "admin")
	out, err := exec.Command("sh", "-c", fmt.Sprintf("%s --data %s keys:add admin --admin < %s.pub", skiffBin, d.data, admin.keyPath)).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("keys:add: %v\n%s", err, out)
	}
	start := time.Now()
	out, err = exec.Command(skiffBin, "--data", d.data, "builder:create").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("builder:create: %v\n%s\n%s", err, out, d.log)
	}
	fmt.Fprintf(os.Stderr, "e2e: builder:create took %.0fs\n", time.Since(start).Seconds())
	return d, nil
}

// fullStop stops the shared daemon; TestMain calls it.
var fullStop = func() {}

// get fetches a URL through the daemon's router with the Host of an app.
func (d *daemon) get(t *testing.T, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.addr.HTTP+path, nil)
	req.Host = host
	c := http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// copyApp copies a sample app into a new git work tree with one commit.
func copyApp(t *testing.T, src string) string {
	t.Helper()
	files := map[string]string{}
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		files[rel] = string(b)
		return nil
	})
	return newRepo(t, files)
}

func hostOf(app string) string { return app + ".skiff.test" }

// bytesBuffer is a bytes.Buffer safe for one writer and readers.
type bytesBuffer = e2etest.Buffer

// startFull starts (or restarts) a daemon of this test that builds and
// runs apps.
func (d *daemon) startFull(args ...string) {
	d.t.Helper()
	d.start(args...)
}

// sandboxDir makes a directory for a daemon's data that sandboxed
// processes can traverse (as /var/lib): t.TempDir's parent is private.
func sandboxDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "skiff-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	testguard.Remove(dir)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// hostResources names what full daemon n of this test process owns on
// the host (nftables table, cgroups, runc state, veth prefix) and its
// address pool: a slot of the host (internal/testslot) that no other test
// process holds, so that two runs on one machine neither clean up each
// other's containers nor reach them at an address one freed.
func hostResources(n int) struct{ prefix, pool string } {
	slot, err := testslot.Get(fmt.Sprintf("e2e-%d", n))
	if err != nil {
		panic(fmt.Sprintf("e2e: %v", err)) // only tests that run as root, after requireFull, ask
	}
	return struct{ prefix, pool string }{prefix: "t" + slot.Tag(), pool: slot.Pool().String()}
}

// teardown stops the daemon and removes what it put on the host, then
// checks that nothing is left: no runc state, cgroup or firewall table.
func (d *daemon) teardown(prefix, pool string) {
	t := d.t
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	d.exited <- nil
	// teardown takes --data after its name, as every command does.
	if r := runCmd(t, execSkiff("teardown", "--data", d.data, "--resource-prefix", prefix, "--network-pool", pool), ""); r.code != 0 {
		t.Fatalf("teardown: %s", r)
	}
	testguard.Cancel(d.data)
	if _, err := os.Stat("/run/" + prefix); !os.IsNotExist(err) {
		t.Errorf("/run/%s is left: %v", prefix, err)
	}
	for _, parent := range []string{prefix, prefix + "-builds", prefix + "-services"} {
		matches, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		if m, _ := filepath.Glob("/sys/fs/cgroup/" + parent); len(m) > 0 {
			matches = append(matches, m...)
		}
		if len(matches) > 0 {
			t.Errorf("cgroups left: %v", matches)
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(" "+d.data+"/")) {
		t.Errorf("mounts left under %s:\n%s", d.data, mi)
	}
	if out, _ := exec.Command("ip", "-o", "link").Output(); bytes.Contains(out, []byte(" "+vethPrefix(prefix))) {
		t.Errorf("veths left:\n%s", out)
	}
	if out, _ := exec.Command("ip", "route", "show", "type", "unreachable").Output(); bytes.Contains(out, []byte(pool)) {
		t.Errorf("the pool's route is left:\n%s", out)
	}
	if out, _ := exec.Command("nft", "list", "tables").Output(); bytes.Contains(out, []byte("inet "+prefix+"\n")) {
		t.Errorf("the firewall table is left:\n%s", out)
	}
}

// vethPrefix is the daemon's veth prefix for a resource prefix other than
// the default (cmd/skiff's namesFor, whose test pins the same values).
func vethPrefix(prefix string) string {
	h := sha256.Sum256([]byte(prefix))
	return "v" + hex.EncodeToString(h[:])[:5]
}
