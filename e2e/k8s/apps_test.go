package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/kubernetes"
)

// pyApp is a Procfile app on the run image's python3: it answers with its
// version, a config var, its release and its pod (DYNO), prints a line
// when it starts and one per request, and has a cron job every minute.
func pyApp(version string) map[string]string {
	return map[string]string{
		"Procfile": "web: exec python3 -u server.py\n",
		"VERSION":  version + "\n",
		"app.json": `{"cron": [{"command": "echo cron ran in $SKIFF_RELEASE", "schedule": "* * * * *"}]}` + "\n",
		"server.py": `import http.server, json, os, signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("started", os.environ.get("SKIFF_RELEASE"), os.environ.get("DYNO"), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"version": open("VERSION").read().strip(), "greeting": os.environ.get("GREETING", ""),
            "process": os.environ.get("DYNO", ""), "release": os.environ.get("SKIFF_RELEASE", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("request", fmt % args, flush=True)
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
`,
	}
}

type answer struct{ Version, Greeting, Process, Release string }

func (d *daemon) answer(t *testing.T, app string) answer {
	t.Helper()
	code, body, err := d.get(app, "/")
	var a answer
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("GET %s: %d %q %v", app, code, body, err)
	}
	return a
}

// eventually retries cond until it holds or d passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func must(t *testing.T, r result, what string, want ...string) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: %s", what, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, r)
		}
	}
	return r
}

// Clusters are an admin's, and checked at once.
func TestClusters(t *testing.T) {
	d, admin, c := onCluster(t)
	list := must(t, d.ssh(admin, "clusters"), "clusters", "tb", "v1.37.2", "one per app")
	if !strings.Contains(list.stdout, "https://10.250.0.10:6443") {
		t.Fatalf("clusters:\n%s", list.stdout)
	}
	if r := d.local("apiVersion: v1\nclusters: [", "clusters:add", "bad"); r.code != 1 || !strings.Contains(r.stderr, "does not parse") {
		t.Fatalf("a kubeconfig that does not parse: %s", r)
	}
	nobody, err := c.UserKubeconfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if r := d.local(string(nobody), "clusters:add", "bare"); r.code != 1 || !strings.Contains(r.stderr, "skiff may not") || !strings.Contains(r.stderr, "create deployments.apps") {
		t.Fatalf("a user without the grants: %s", r)
	}
	if r := d.local(string(nobody), "clusters:add", "ns", "--namespace", "no-such-ns"); r.code != 1 || !strings.Contains(r.stderr, "no-such-ns") {
		t.Fatalf("a namespace that does not exist: %s", r)
	}
	if r := d.local("", "clusters:add", "Bad/Name"); r.code != 1 || !strings.Contains(r.stderr, "invalid cluster name") {
		t.Fatalf("a bad name: %s", r)
	}
	bob := newKey(d.dir, "bob")
	must(t, d.local(bob.authorizedKey()+"\n", "keys:add", "bob"), "keys:add bob")
	if r := d.ssh(bob, "clusters:add", "mine"); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
		t.Fatalf("clusters:add by a user who is no admin: %s", r)
	}
	if r := d.ssh(bob, "clusters"); r.code == 0 {
		t.Fatalf("clusters by a user who is no admin: %s", r)
	}
	if r := d.ssh(admin, "clusters:remove", "nope"); r.code != 1 || !strings.Contains(r.stderr, "no cluster nope") {
		t.Fatalf("clusters:remove of a cluster that is not there: %s", r)
	}
}

// An app on the cluster, as its users see it: push, config, scale, logs,
// run, rollback, a release that never gets ready, a registry the node
// cannot reach, cron, a move back here and there again, destroy.
func TestAppOnCluster(t *testing.T) {
	d, admin, c := onCluster(t)
	const app = "kapp"
	must(t, d.ssh(admin, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s"), "scheduler:set before the first deploy", "from its first deploy", "cluster tb")
	src := repo(t, pyApp("1"))
	gitIn(t, src, "remote", "add", "skiff", d.remote(app))
	start := time.Now()
	push := d.git(admin, src, "push", "skiff", "main")
	must(t, push, "the first push", "Rolling out v1 on cluster tb: web=1", "scheduled on tb-node1", "Pulling", "1 of 1 new pods ready", "Released v1")
	t.Logf("first push (build, pull, rollout) in %.0fs:\n%s", time.Since(start).Seconds(), push.stderr)
	a := d.answer(t, app)
	if a.Version != "1" || a.Release != "v1" || !strings.HasPrefix(a.Process, "web-") {
		t.Fatalf("after the first push: %+v", a)
	}
	ps := must(t, d.ssh(admin, "ps", app, "web"), "ps", "web.1: up", "node tb-node1")
	if !regexp.MustCompile(`web\.1: up for \S+  v1 .*restarts 0`).MatchString(ps.stdout) {
		t.Fatalf("ps:\n%s", ps.stdout)
	}
	ns := "skiff-" + appID(t, d, admin, app)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("config", func(t *testing.T) {
		must(t, d.ssh(admin, "config:set", app, "GREETING=hi"), "config:set", "Rolling out v2")
		if a := d.answer(t, app); a.Greeting != "hi" || a.Release != "v2" {
			t.Fatalf("after config:set: %+v", a)
		}
	})
	t.Run("scale", func(t *testing.T) {
		must(t, d.ssh(admin, "ps:scale", app, "web=2"), "ps:scale", "web=2")
		// (A pod of v1 may still be stopping from config:set's rollout: ps
		// lists it as stopping.)
		ps := must(t, d.ssh(admin, "ps", app, "web"), "ps", "web.1: up", "web.2: up")
		if up := regexp.MustCompile(`(?m)^web\.\d: up .*node tb-node1$`).FindAllString(ps.stdout, -1); len(up) != 2 {
			t.Fatalf("ps after the scale:\n%s", ps.stdout)
		}
		seen := map[string]bool{}
		eventually(t, "requests reaching both pods", 20*time.Second, func() error {
			seen[d.answer(t, app).Process] = true
			if len(seen) < 2 {
				return errorf("reached %v", seen)
			}
			return nil
		})
	})
	t.Run("logs follow a rollout", func(t *testing.T) {
		conn, err := d.dial(admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		s, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var out buffer
		s.Stdout = &out
		if err := s.Start("logs " + app + " -t -n 0"); err != nil {
			t.Fatal(err)
		}
		before := pods(t, cl, ns)
		must(t, d.ssh(admin, "ps:restart", app), "ps:restart", "Rolling out v2")
		after := pods(t, cl, ns)
		for p := range after {
			if before[p] {
				t.Fatalf("pod %s outlived ps:restart", p)
			}
		}
		eventually(t, "logs -t showing every new pod's start", 30*time.Second, func() error {
			for p := range after {
				if !strings.Contains(out.String(), "started v2 "+p) {
					return errorf("no start of %s in:\n%s", p, out.String())
				}
			}
			return nil
		})
		s.Close()
	})
	t.Run("run with a terminal", func(t *testing.T) {
		conn, err := d.dial(admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		s, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestPty("xterm", 33, 101, gossh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		s.Stdout = &out
		err = s.Run("run " + app + " tty; stty size; echo $GREETING; exit 4")
		var exit *gossh.ExitError
		if !asExit(err, &exit) || exit.ExitStatus() != 4 {
			t.Fatalf("run with a terminal: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "33 101") || !strings.Contains(out.String(), "hi") {
			t.Fatalf("no terminal, the wrong size or not the release's config:\n%q", out.String())
		}
		if r := d.ssh(admin, "run", app, "echo out; echo err >&2; exit 3"); r.code != 3 || !strings.Contains(r.stdout, "out") {
			t.Fatalf("run without a terminal: %s", r)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		must(t, d.ssh(admin, "releases:rollback", app), "releases:rollback", "Rolling out v3")
		if a := d.answer(t, app); a.Greeting != "" || a.Release != "v3" {
			t.Fatalf("after the rollback to v1: %+v", a)
		}
	})
	t.Run("never ready", func(t *testing.T) {
		must(t, d.ssh(admin, "checks:set", app, "deadline=10"), "checks:set")
		write(t, src, map[string]string{"Procfile": "web: echo 'config missing: DATABASE_URL' >&2; exit 1\n"}, "crash at start")
		r := d.git(admin, src, "push", "skiff", "main")
		if r.code == 0 || !strings.Contains(r.stderr, "CrashLoopBackOff") || !strings.Contains(r.stderr, "config missing: DATABASE_URL") ||
			!strings.Contains(r.stderr, "Rolling back to v3") {
			t.Fatalf("push of a release that never gets ready: %s", r)
		}
		gitIn(t, src, "reset", "-q", "--hard", "HEAD~1")
		if a := d.answer(t, app); a.Release != "v3" {
			t.Fatalf("the old release lost the traffic: %+v", a)
		}
		eventually(t, "only v3's pods left", 60*time.Second, func() error {
			for p, rel := range podReleases(t, cl, ns) {
				if rel != "3" {
					return errorf("pod %s of v%s", p, rel)
				}
			}
			return nil
		})
	})
	t.Run("registry out of reach", func(t *testing.T) {
		// The node is told to pull from an address nothing answers at.
		d.stop()
		wrong := append(append([]string{}, d.args...), "--registry-host", c.HostIP()+":5999")
		if err := d.start(d.netns, wrong...); err != nil {
			t.Fatal(err)
		}
		write(t, src, map[string]string{"VERSION": "2\n"}, "version 2")
		r := d.git(admin, src, "push", "skiff", "main")
		d.stop()
		if err := d.start(d.netns, d.args...); err != nil {
			t.Fatal(err)
		}
		if r.code == 0 || !regexp.MustCompile(`ErrImagePull|ImagePullBackOff`).MatchString(r.stderr) || !strings.Contains(r.stderr, "5999") {
			t.Fatalf("push whose image the node cannot pull: %s", r)
		}
		if a := d.answer(t, app); a.Release != "v3" || a.Version != "1" {
			t.Fatalf("the old release lost the traffic: %+v", a)
		}
		gitIn(t, src, "reset", "-q", "--hard", "HEAD~1")
	})
	t.Run("cron", func(t *testing.T) {
		var hist result
		eventually(t, "a cron run on the cluster's schedule", 120*time.Second, func() error {
			hist = d.ssh(admin, "cron:history", app)
			if !strings.Contains(hist.stdout, "succeeded") || !strings.Contains(hist.stdout, "ran on cluster tb as Job") {
				return errorf("cron:history:\n%s", hist)
			}
			return nil
		})
		id := regexp.MustCompile(`#(\d+)`).FindStringSubmatch(hist.stdout)
		if out := d.ssh(admin, "cron:output", app, id[1]); !strings.Contains(out.stdout, "cron ran in v") {
			t.Fatalf("cron:output: %s", out)
		}
		cjs, err := cl.Typed.BatchV1().CronJobs(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(cjs.Items) != 1 || cjs.Items[0].Spec.ConcurrencyPolicy != "Forbid" {
			t.Fatalf("the CronJobs: %+v %v", cjs, err)
		}
	})
	t.Run("scheduler:set local and back", func(t *testing.T) {
		// Something of the cluster's admin that looks like the app's:
		// skiff leaves it alone.
		lookalike := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "lookalike", Namespace: "default",
			Labels: map[string]string{"skiff.dev/app-id": strings.TrimPrefix(ns, "skiff-")}}}
		if _, err := cl.Typed.CoreV1().ConfigMaps("default").Create(context.Background(), lookalike, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		must(t, d.ssh(admin, "scheduler:set", app, "local"), "scheduler:set local", "Moving kapp from cluster tb to this server", "Removing kapp from cluster tb")
		// Either of the two instances may answer (the router balances);
		// ps below tells here from the cluster.
		if a := d.answer(t, app); !strings.HasPrefix(a.Process, "web.") || a.Release != "v3" {
			t.Fatalf("served here: %+v", a)
		}
		if ps := d.ssh(admin, "ps", app, "web").stdout; strings.Contains(ps, "tb-node1") || !strings.Contains(ps, "web.2: up") {
			t.Fatalf("ps after the move here:\n%s", ps)
		}
		if got, err := cl.Typed.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); err == nil && got.DeletionTimestamp == nil {
			t.Fatalf("the app's namespace stays on the cluster")
		}
		if _, err := cl.Typed.CoreV1().ConfigMaps("default").Get(context.Background(), "lookalike", metav1.GetOptions{}); err != nil {
			t.Fatalf("skiff removed something it had not made: %v", err)
		}
		must(t, d.ssh(admin, "scheduler:set", app, "k8s", "--cluster", "tb"), "scheduler:set k8s", "Moving kapp from this server to cluster tb")
		if a := d.answer(t, app); !strings.HasPrefix(a.Process, "web-") || a.Release != "v3" {
			t.Fatalf("served by the cluster again: %+v", a)
		}
		if ps := d.ssh(admin, "ps", app, "web").stdout; strings.Count(ps, "tb-node1") != 2 {
			t.Fatalf("ps after the move back:\n%s", ps)
		}
		if r := d.ssh(admin, "clusters:remove", "tb"); r.code == 0 || !strings.Contains(r.stderr, "kapp run on cluster tb") {
			t.Fatalf("clusters:remove of a cluster an app runs on: %s", r)
		}
	})
	t.Run("storage without a StorageClass", func(t *testing.T) {
		// The test bed has no default StorageClass (TestVolumesOnCluster
		// makes one): a claim could never bind, and the release says so
		// at once rather than waiting on pods that cannot start.
		must(t, d.ssh(admin, "storage:ensure-directory", "kdata"), "storage:ensure-directory")
		// web runs 2 pods, which a ReadWriteOnce claim cannot serve.
		if r := d.ssh(admin, "storage:mount", app, "kdata:/data"); r.code == 0 || !strings.Contains(r.stderr, "ReadWriteOnce") || !strings.Contains(r.stderr, "ps:scale kapp web=1") {
			t.Fatalf("storage:mount into a web of 2 pods: %s", r)
		}
		must(t, d.ssh(admin, "ps:scale", app, "web=1"), "ps:scale web=1")
		if r := d.ssh(admin, "storage:mount", app, "kdata:/data"); r.code == 0 || !strings.Contains(r.stderr, "has no default StorageClass") {
			t.Fatalf("storage:mount on a cluster without a default StorageClass: %s", r)
		}
		if a := d.answer(t, app); a.Release != "v3" {
			t.Fatalf("a refused mount changed the release: %+v", a)
		}
	})
}

// kill -9 of skiff in the middle of a rollout: the next daemon settles it,
// and the app has one current release, served, with only its pods.
func TestKilledMidRollout(t *testing.T) {
	d, admin, c := onCluster(t)
	const app = "kdead"
	must(t, d.ssh(admin, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s"), "scheduler:set")
	src := repo(t, pyApp("1"))
	must(t, d.git(admin, src, "push", d.remote(app), "main"), "push")
	must(t, d.ssh(admin, "ps:scale", app, "web=2"), "ps:scale")
	ns := "skiff-" + appID(t, d, admin, app)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}
	killMidRollout(t, d, admin, app)
	if err := d.start(d.netns, d.args...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one current release, served by its pods only", 3*time.Minute, func() error {
		code, body, err := d.get(app, "/")
		if err != nil || code != 200 {
			return errorf("GET: %d %s %v", code, body, err)
		}
		rels := d.ssh(admin, "releases", app, "--format", "json").stdout
		var list []struct {
			Version int
			Current bool
			Status  string
		}
		if err := json.Unmarshal([]byte(rels), &list); err != nil {
			return err
		}
		current := 0
		for _, r := range list {
			if r.Current {
				current = r.Version
			}
			if r.Status == "pending" {
				return errorf("release v%d is still pending", r.Version)
			}
		}
		pods := podReleases(t, cl, ns)
		if len(pods) != 2 {
			return errorf("pods %v", pods)
		}
		for p, rel := range pods {
			if rel != itoa(current) {
				return errorf("pod %s of v%s while v%d is current", p, rel, current)
			}
		}
		var a answer
		json.Unmarshal([]byte(body), &a)
		if a.Release != "v"+itoa(current) {
			return errorf("served %+v while v%d is current", a, current)
		}
		return nil
	})
	must(t, d.ssh(admin, "apps:destroy", app, "--force"), "apps:destroy")
	eventually(t, "the app's namespace gone", 2*time.Minute, func() error {
		if _, err := cl.Typed.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); err == nil {
			return errorf("namespace %s is there", ns)
		}
		return nil
	})
}

// appID is the app's id, from apps:info.
func appID(t *testing.T, d *daemon, u *user, app string) string {
	t.Helper()
	var info struct{ ID string }
	r := d.ssh(u, "apps:info", app, "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.ID == "" {
		t.Fatalf("apps:info: %s", r)
	}
	return info.ID
}

// pods are the names of the web pods of the app's namespace that are
// not going.
func pods(t *testing.T, cl *kubernetes.Client, ns string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for p := range podReleases(t, cl, ns) {
		out[p] = true
	}
	return out
}

// podReleases are the web pods of the namespace that are not going, with
// their releases.
func podReleases(t *testing.T, cl *kubernetes.Client, ns string) map[string]string {
	t.Helper()
	list, err := cl.Typed.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelProcess + "=web"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out[p.Name] = p.Labels[kubernetes.LabelRelease]
		}
	}
	return out
}

func asExit(err error, target **gossh.ExitError) bool { return errors.As(err, target) }

func itoa(n int) string { return strconv.Itoa(n) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
