package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/kubernetes"
)

// releaseProcfile is pyApp's Procfile with a release command that says
// where it runs: the release, a config var, the pod's name (its hostname),
// a file of the image, and that no service account token is mounted.
func releaseProcfile(cmd string) string {
	return "web: exec python3 -u server.py\nrelease: " + cmd + "\n"
}

const releaseCmd = `echo "release phase of $SKIFF_RELEASE, GREETING=$GREETING, on $(cat /etc/hostname), VERSION $(cat VERSION)"; ` +
	`test -e /var/run/secrets/kubernetes.io/serviceaccount/token && echo "a service account token" || echo "no service account token"`

// seen is what a watch of the app's namespace saw, in the order it came.
type seen struct {
	mu     sync.Mutex
	events []string // "job-added NAME IMAGE", "job-done NAME", "rs-added RELEASE IMAGE"
}

func (s *seen) add(e string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

// watchNamespace follows the namespace's Jobs and ReplicaSets until ctx
// ends, listing them every 100 ms (a watch from "now" times out on the
// test bed's etcd 3.4, which has no progress notifications).
func watchNamespace(ctx context.Context, t *testing.T, cl *kubernetes.Client, ns string) *seen {
	t.Helper()
	s := &seen{}
	jobs, rss, done := map[string]bool{}, map[string]bool{}, map[string]bool{}
	go func() {
		for ctx.Err() == nil {
			jl, err := cl.Typed.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
			rl, err2 := cl.Typed.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
			if err == nil && err2 == nil {
				now := map[string]bool{}
				for _, j := range jl.Items {
					now[j.Name] = true
					if !jobs[j.Name] {
						jobs[j.Name] = true
						s.add(fmt.Sprintf("job-added %s %s", j.Name, j.Spec.Template.Spec.Containers[0].Image))
					}
					if (j.Status.Succeeded+j.Status.Failed > 0 || j.DeletionTimestamp != nil) && !done[j.Name] {
						done[j.Name] = true
						s.add("job-done " + j.Name)
					}
				}
				for name := range jobs {
					if !now[name] && !done[name] {
						done[name] = true
						s.add("job-done " + name)
					}
				}
				for _, rs := range rl.Items {
					if !rss[rs.Name] {
						rss[rs.Name] = true
						s.add(fmt.Sprintf("rs-added %s %s", rs.Labels[kubernetes.LabelRelease], rs.Spec.Template.Spec.Containers[0].Image))
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	// What is there already is no event of the push.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.list()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	s.events = nil
	s.mu.Unlock()
	return s
}

// The release phase on a cluster: a Job of the release's image and config,
// run before the Deployments roll, its output in the push; a failing or
// hanging release command rejects the push and the previous release keeps
// serving, with nothing of the Job left. Then cron:run, cron:suspend and
// cron:resume on the same app.
func TestReleasePhaseAndCronOnCluster(t *testing.T) {
	d, admin, c := onCluster(t)
	const app = "krel"
	must(t, d.ssh(admin, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s"), "scheduler:set")
	must(t, d.ssh(admin, "config:set", app, "GREETING=hello"), "config:set")
	files := pyApp("1")
	files["Procfile"] = releaseProcfile(releaseCmd)
	files["app.json"] = `{"cron": [{"command": "echo cron ran in $SKIFF_RELEASE", "schedule": "0 0 1 1 *"},
		{"command": "echo slow; sleep 20", "schedule": "0 0 1 1 *"}]}` + "\n"
	src := repo(t, files)
	gitIn(t, src, "remote", "add", "skiff", d.remote(app))
	push := must(t, d.git(admin, src, "push", "skiff", "main"), "the first push", "Running release command", "Released v")
	ran := regexp.MustCompile(`release phase of (v\d+), GREETING=hello, on (\S+), VERSION 1`).FindStringSubmatch(push.stderr)
	if ran == nil || !strings.HasPrefix(ran[2], "release-"+strings.TrimPrefix(ran[1], "v")+"-") || !strings.Contains(push.stderr, "no service account token") {
		t.Fatalf("the release command's output is not in the push, or it did not run in a pod of the release:\n%s", push.stderr)
	}
	if strings.Index(push.stderr, "release phase of") > strings.Index(push.stderr, "Rolling out") {
		t.Fatalf("the release phase ran after the rollout began:\n%s", push.stderr)
	}
	ns := "skiff-" + appID(t, d, admin, app)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}
	current := d.answer(t, app).Release

	t.Run("ps CPU and memory", func(t *testing.T) {
		// The test bed has no metrics API, and skiff may not read the
		// kubelets' figures: ps says so.
		ps := must(t, d.ssh(admin, "ps", app), "ps", "cpu ?  mem ?/")
		if !strings.Contains(ps.stderr, "no metrics API") || !strings.Contains(ps.stderr, "may not read the kubelets' figures") {
			t.Fatalf("ps without figures does not say why:\n%s", ps)
		}
		if err := applyRBAC(context.Background(), c, kubernetes.NodeStatsRBAC); err != nil {
			t.Fatal(err)
		}
		defer func() {
			a, _ := adminClient(c)
			_ = a.Typed.RbacV1().ClusterRoleBindings().Delete(context.Background(), "skiff-node-stats", metav1.DeleteOptions{})
			_ = a.Typed.RbacV1().ClusterRoles().Delete(context.Background(), "skiff-node-stats", metav1.DeleteOptions{})
		}()
		figures := regexp.MustCompile(`web\.1: up .* cpu (\d+(\.\d+)?m?s)  mem (\d+(\.\d)?[KMG])/`)
		eventually(t, "ps with the kubelet's figures", 30*time.Second, func() error {
			ps = d.ssh(admin, "ps", app)
			if m := figures.FindStringSubmatch(ps.stdout); m == nil || m[1] == "0s" || strings.Contains(ps.stderr, "No CPU") {
				return errorf("ps:\n%s", ps)
			}
			return nil
		})
		t.Logf("ps with the kubelet's figures:\n%s", ps.stdout)
		var ins []struct {
			Spec struct {
				AppName string `json:"app_name"`
			}
			CPU         int64 `json:"cpu_ns"`
			MemoryBytes int64 `json:"memory_bytes"`
		}
		if err := json.Unmarshal([]byte(d.ssh(admin, "ps", app, "--format", "json").stdout), &ins); err != nil || len(ins) == 0 {
			t.Fatalf("ps --format json: %v", err)
		}
		for _, in := range ins {
			if in.Spec.AppName != app || in.CPU <= 0 || in.MemoryBytes < 1<<20 {
				t.Fatalf("ps --format json: %+v", ins)
			}
		}
		eve := newKey(d.dir, "eve-ps")
		must(t, d.local(eve.authorizedKey()+"\n", "keys:add", "eve-ps"), "keys:add")
		if r := d.ssh(eve, "ps", app); r.code == 0 || strings.Contains(r.stdout, "web.1") {
			t.Fatalf("ps by a user without access: %s", r)
		}
	})

	t.Run("a Job before the rollout", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := watchNamespace(ctx, t, cl, ns)
		write(t, src, map[string]string{"VERSION": "2\n"}, "version 2")
		push := must(t, d.git(admin, src, "push", "skiff", "main"), "the second push", "VERSION 2", "Released v")
		a := d.answer(t, app)
		if a.Version != "2" {
			t.Fatalf("after the push: %+v", a)
		}
		current = a.Release
		rel := strings.TrimPrefix(a.Release, "v")
		var job, jobImage, rsImage string
		var jobDone, rsAdded int
		eventually(t, "the watch seeing the Job and the new ReplicaSet", 10*time.Second, func() error {
			jobDone, rsAdded = -1, -1
			for i, e := range w.list() {
				f := strings.Fields(e)
				switch {
				case f[0] == "job-added" && strings.HasPrefix(f[1], "release-"+rel+"-"):
					job, jobImage = f[1], f[2]
				case f[0] == "job-done" && f[1] == job:
					jobDone = i
				case f[0] == "rs-added" && f[1] == rel:
					rsImage, rsAdded = f[2], i
				}
			}
			if jobDone < 0 || rsAdded < 0 {
				return errorf("events %v", w.list())
			}
			return nil
		})
		if jobDone > rsAdded || jobImage != rsImage || !strings.Contains(jobImage, "@sha256:") {
			t.Fatalf("the release Job (%s, ended at event %d) should end before v%s's ReplicaSet (%s, event %d) and run its image:\n%v\n%s",
				jobImage, jobDone, rel, rsImage, rsAdded, w.list(), push.stderr)
		}
		eventually(t, "the release Job gone", 30*time.Second, func() error {
			if _, err := cl.Typed.BatchV1().Jobs(ns).Get(context.Background(), job, metav1.GetOptions{}); err == nil {
				return errorf("Job %s is still there", job)
			}
			return nil
		})
	})

	t.Run("a failing release command", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := watchNamespace(ctx, t, cl, ns)
		write(t, src, map[string]string{"VERSION": "3\n", "Procfile": releaseProcfile(`echo "migrating"; echo "migration failed: no table users" >&2; exit 3`)}, "a failing release")
		r := d.git(admin, src, "push", "skiff", "main")
		if r.code == 0 || !strings.Contains(r.stderr, "migration failed: no table users") || !strings.Contains(r.stderr, "exited with status 3") {
			t.Fatalf("push of a release whose release command fails: %s", r)
		}
		gitIn(t, src, "reset", "-q", "--hard", "HEAD~1")
		if a := d.answer(t, app); a.Release != current || a.Version != "2" {
			t.Fatalf("the previous release lost the traffic: %+v, want %s", a, current)
		}
		for _, e := range w.list() {
			if strings.HasPrefix(e, "rs-added") {
				t.Fatalf("a failed release phase rolled a Deployment: %v", w.list())
			}
		}
		for p, rel := range podReleases(t, cl, ns) {
			if "v"+rel != current {
				t.Fatalf("pod %s of v%s after a failed release phase (current %s)", p, rel, current)
			}
		}
	})

	t.Run("a release command past its timeout", func(t *testing.T) {
		must(t, d.ssh(admin, "checks:set", app, "release-timeout=8"), "checks:set")
		write(t, src, map[string]string{"VERSION": "4\n", "Procfile": releaseProcfile(`echo "waiting forever"; sleep 600`)}, "a hanging release")
		start := time.Now()
		r := d.git(admin, src, "push", "skiff", "main")
		if r.code == 0 || !strings.Contains(r.stderr, "waiting forever") || time.Since(start) > 2*time.Minute {
			t.Fatalf("push of a release whose release command hangs (%.0fs): %s", time.Since(start).Seconds(), r)
		}
		t.Logf("rejected after %.0fs:\n%s", time.Since(start).Seconds(), tailLines(r.stderr, 6))
		gitIn(t, src, "reset", "-q", "--hard", "HEAD~1")
		must(t, d.ssh(admin, "checks:set", app, "release-timeout=1800"), "checks:set back")
		if a := d.answer(t, app); a.Release != current {
			t.Fatalf("the previous release lost the traffic: %+v, want %s", a, current)
		}
		eventually(t, "no Job or pod of the release phase left", 40*time.Second, func() error {
			jobs, err := cl.Typed.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelAttached + "=true"})
			if err != nil || len(jobs.Items) > 0 {
				return errorf("jobs %v %v", jobs, err)
			}
			pods, err := cl.Typed.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelAttached + "=true"})
			if err != nil || len(pods.Items) > 0 {
				return errorf("pods %d %v", len(pods.Items), err)
			}
			return nil
		})
	})

	cronOnCluster(t, d, admin, cl, app, ns)
}

// cronOnCluster: cron:run is a Job made from the job's CronJob (as
// `kubectl create job --from` makes one), its output streamed and the run
// in cron:history; a run that is going on the cluster refuses another;
// cron:suspend and cron:resume set the CronJob's suspend; bad input and
// another user are refused.
func cronOnCluster(t *testing.T, d *daemon, admin *user, cl *kubernetes.Client, app, ns string) {
	var jobs []struct{ ID, Command string }
	if r := d.ssh(admin, "cron:list", app, "--format", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &jobs) != nil || len(jobs) != 2 {
		t.Fatalf("cron:list: %s", r)
	}
	tick, slow := jobs[0].ID, jobs[1].ID
	if !strings.Contains(jobs[0].Command, "cron ran") {
		tick, slow = slow, tick
	}
	cronJob := func(id string) *batchv1.CronJob {
		t.Helper()
		list, err := cl.Typed.BatchV1().CronJobs(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelCronJob + "=" + id})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("the CronJob of %s: %v %v", id, list, err)
		}
		return &list.Items[0]
	}

	t.Run("cron:run", func(t *testing.T) {
		r := must(t, d.ssh(admin, "cron:run", app, tick), "cron:run", "cron ran in v", "succeeded")
		jl, err := cl.Typed.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelCronJob + "=" + tick})
		if err != nil {
			t.Fatal(err)
		}
		cj := cronJob(tick)
		manual := 0
		for _, j := range jl.Items {
			if j.Annotations[kubernetes.AnnotationInstantiate] == "manual" {
				manual++
				if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].UID != cj.UID ||
					j.Spec.Template.Spec.Containers[0].Image != cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image {
					t.Fatalf("Job %s is not made from CronJob %s: %+v", j.Name, cj.Name, j)
				}
			}
		}
		if manual != 1 {
			t.Fatalf("%d Jobs made by hand of %s after cron:run:\n%s", manual, tick, r)
		}
		hist := d.ssh(admin, "cron:history", app, tick, "--format", "json").stdout
		var runs []struct {
			Trigger, Status string
		}
		if err := json.Unmarshal([]byte(hist), &runs); err != nil {
			t.Fatal(err, hist)
		}
		found := false
		for _, r := range runs {
			found = found || (r.Trigger == "manual" && r.Status == "succeeded")
		}
		if !found {
			t.Fatalf("cron:history has no manual run that succeeded:\n%s", hist)
		}
	})
	t.Run("a run going on the cluster refuses cron:run", func(t *testing.T) {
		// A run of the slow job that the cluster is running: made from its
		// CronJob, as the cluster's scheduled run or an admin's
		// `kubectl create job --from` would be.
		cj := cronJob(slow)
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "by-hand", Namespace: ns, Labels: cj.Spec.JobTemplate.Labels}, Spec: cj.Spec.JobTemplate.Spec}
		if _, err := cl.Typed.BatchV1().Jobs(ns).Create(context.Background(), job, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if r := d.ssh(admin, "cron:run", app, slow); r.code == 0 || !strings.Contains(r.stderr, "was not started") || !strings.Contains(r.stderr, "never overlap") || !strings.Contains(r.stderr, "by-hand") {
			t.Fatalf("cron:run while a run is going on the cluster: %s", r)
		}
		// It never ran: not started, not a failure of the job.
		hist := d.ssh(admin, "cron:history", app, slow, "--format", "json").stdout
		var runs []struct{ Trigger, Status, Detail string }
		if err := json.Unmarshal([]byte(hist), &runs); err != nil || len(runs) == 0 {
			t.Fatal(err, hist)
		}
		if runs[0].Trigger != "manual" || runs[0].Status != "not-started" || !strings.Contains(runs[0].Detail, "by-hand") {
			t.Fatalf("the refused run in cron:history: %+v", runs[0])
		}
		if r := must(t, d.ssh(admin, "cron:history", app, slow), "cron:history"); !strings.Contains(r.stdout, "not started") {
			t.Fatalf("cron:history of the refused run: %s", r)
		}
		policy := metav1.DeletePropagationBackground
		_ = cl.Typed.BatchV1().Jobs(ns).Delete(context.Background(), "by-hand", metav1.DeleteOptions{PropagationPolicy: &policy})
	})
	t.Run("cron:suspend and cron:resume", func(t *testing.T) {
		must(t, d.ssh(admin, "cron:suspend", app, tick), "cron:suspend")
		if cj := cronJob(tick); cj.Spec.Suspend == nil || !*cj.Spec.Suspend {
			t.Fatalf("cron:suspend left the CronJob running: %+v", cj.Spec)
		}
		if cj := cronJob(slow); cj.Spec.Suspend != nil && *cj.Spec.Suspend {
			t.Fatalf("cron:suspend of %s suspended %s too", tick, slow)
		}
		must(t, d.ssh(admin, "cron:list", app), "cron:list", "suspended")
		must(t, d.ssh(admin, "cron:resume", app, tick), "cron:resume")
		if cj := cronJob(tick); cj.Spec.Suspend != nil && *cj.Spec.Suspend {
			t.Fatalf("cron:resume left the CronJob suspended: %+v", cj.Spec)
		}
	})
	t.Run("bad input and another user", func(t *testing.T) {
		if r := d.ssh(admin, "cron:run", app, "aaaaaaaaaa"); r.code == 0 || !strings.Contains(r.stderr, "no cron job") {
			t.Fatalf("cron:run of a job that does not exist: %s", r)
		}
		if r := d.ssh(admin, "cron:suspend", app, "../x"); r.code == 0 {
			t.Fatalf("cron:suspend of a bad id: %s", r)
		}
		eve := newKey(d.dir, "eve")
		must(t, d.local(eve.authorizedKey()+"\n", "keys:add", "eve"), "keys:add eve")
		for _, cmd := range [][]string{{"cron:run", app, tick}, {"cron:suspend", app, tick}, {"cron:resume", app, tick}, {"cron:history", app}} {
			if r := d.ssh(eve, cmd...); r.code == 0 || strings.Contains(r.stdout+r.stderr, "cron ran") {
				t.Fatalf("%v by a user without access: %s", cmd, r)
			}
		}
		if cj := cronJob(tick); cj.Spec.Suspend != nil && *cj.Spec.Suspend {
			t.Fatalf("another user suspended the CronJob")
		}
	})
}
