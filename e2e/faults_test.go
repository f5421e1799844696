package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A release whose web process never becomes ready is not promoted: the push
// is rejected with the process's last lines, and the old release keeps all
// of the traffic.
func TestUnreadyReleaseIsNotPromoted(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "unready"
	repo := newRepo(t, pyApp("1"))
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	commit(t, repo, "Procfile", "web: echo 'config missing: DATABASE_URL' >&2; exit 1\n", "crash at start")
	r := d.git(admin, repo, "push", "skiff", "main")
	if r.code == 0 || !strings.Contains(r.stderr, "web.1 did not become ready") || !strings.Contains(r.stderr, "config missing: DATABASE_URL") {
		t.Fatalf("push of a crashing app: %s", r)
	}
	if a := d.answer(t, app); a.Version != "1" || a.Release != "v1" {
		t.Fatalf("the old release lost traffic: %+v", a)
	}
	rels := d.ssh(admin, "", "releases", app).stdout
	if !strings.Contains(rels, "v2") || !strings.Contains(rels, "failed") || !strings.Contains(rels, "v1  Deploy") {
		t.Fatalf("releases:\n%s", rels)
	}
	if ps := d.ssh(admin, "", "ps", app).stdout; strings.Contains(ps, "v2") {
		t.Fatalf("instances of the failed release are left:\n%s", ps)
	}
}

// kill -9 of the daemon in the middle of a deploy, then a restart: the app
// has exactly one current release, it serves, and nothing of the
// interrupted deploy is left running.
func TestDaemonKilledMidDeploy(t *testing.T) {
	requireFull(t)
	dir := sandboxDir(t)
	d := &daemon{t: t, dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer)}
	hr := hostResources(1)
	args := []string{"--resource-prefix", hr.prefix, "--network-pool", hr.pool, "--debootstrap-cache", debootstrapCache, "--acme-ca", ""}
	d.startFull(args...)
	admin := d.addUser("admin", true)
	if r := d.local("", "builder:create"); r.code != 0 {
		t.Fatal(r)
	}
	const app = "survivor"
	repo := newRepo(t, pyApp("1"))
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}

	// Push v2 and kill the daemon once the new instance is starting.
	commit(t, repo, "VERSION", "2\n", "v2")
	push := exec.Command("git", "push", "skiff", "main")
	push.Dir, push.Env = repo, gitEnv(d.dir, "ssh "+strings.Join(d.sshBase(admin), " "))
	var pushOut bytesBuffer
	push.Stdout, push.Stderr = &pushOut, &pushOut
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(pushOut.String(), "Starting web.1 of v2") {
		if time.Now().After(deadline) {
			t.Fatalf("the push never reached the rollout:\n%s", pushOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A client keeps asking through the restart, on the same address. While
	// no daemon listens its connections are refused; every answer it does
	// get must be the app's (routes are restored before the router serves,
	// so no 404 for an unknown host or 503 for an app without instances).
	httpAddr := d.addr.HTTP
	codes := map[int]int{}
	stopProbe, probed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(probed)
		c := http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stopProbe:
				return
			default:
			}
			req, _ := http.NewRequest("GET", "http://"+httpAddr+"/", nil)
			req.Host = hostOf(app)
			if resp, err := c.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[resp.StatusCode]++
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	d.kill9()
	if err := push.Wait(); err == nil {
		t.Fatalf("the push succeeded although the daemon died:\n%s", pushOut.String())
	}

	d.startFull(append(args, "--http-addr", httpAddr)...)
	time.Sleep(time.Second)
	close(stopProbe)
	<-probed
	if len(codes) != 1 || codes[200] == 0 {
		t.Fatalf("answers through the restart: %v (status: count)", codes)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		ps := d.local("", "ps", app).stdout
		if strings.Count(ps, "web.") == 1 && strings.Contains(ps, "up") && !strings.Contains(ps, "v2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, ps:\n%s", ps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a := d.answer(t, app); a.Release != "v1" || a.Version != "1" {
		t.Fatalf("after the restart the app serves %+v", a)
	}
	rels := d.local("", "releases", app).stdout
	if strings.Count(rels, "current") != 1 || !strings.Contains(rels, "failed") {
		t.Fatalf("releases after the restart:\n%s", rels)
	}
	if r := d.local("", "builds", app); strings.Contains(r.stdout, "building") {
		t.Fatalf("a build is still marked running:\n%s", r.stdout)
	}
	// What the build left to settle in the background (its container, its
	// cache overlay, its scratch space) when the daemon died is swept at
	// the start.
	if out, err := exec.Command("runc", "--root", "/run/"+hr.prefix+"/runc-builds", "list", "-q").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("build containers after the restart: %q %v", out, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.data, "tmp", "builds")); len(ents) != 0 {
		t.Errorf("build scratch after the restart: %v", ents)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), filepath.Join(d.data, "tmp", "builds")+"/") {
		t.Errorf("build mounts after the restart:\n%s", mi)
	}
	// The next push works.
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 || !strings.Contains(r.stderr, "Released v3") {
		t.Fatalf("push after the restart: %s", r)
	}
	// Stopped and torn down, the daemon leaves nothing on the host.
	d.teardown(hr.prefix, hr.pool)
}
