package kubernetes

// On a full node: an app's formation rolled out as Deployments (and its
// cron jobs as CronJobs) by the Scheduler, as deploy asks for it.

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/registry"
)

// probePod runs the probe image (its command language; serving without a
// command) from the node bed's registry.
func (nb *nodeBed) probePod(_ context.Context, spec *skiff.InstanceSpec) (*PodImage, error) {
	uid := int64(1000)
	user, pass := registry.Credentials(nb.secret, "tb", spec.AppID)
	return &PodImage{Ref: registry.Reference(k8stestbed.RegistryHost, spec.AppID, spec.Image), UID: &uid, GID: &uid,
		Registry: &Registry{Server: k8stestbed.RegistryHost, Username: user, Password: pass}, Args: strings.Fields(strings.Join(spec.Command, " "))}, nil
}

func TestFormationRollout(t *testing.T) {
	nb := oneNode(t)
	logs, err := applog.New(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan string, 1000)
	runs := make(chan *CronRun, 10)
	s := NewScheduler(SchedulerConfig{Name: "tb", Client: nb.client, Image: nb.probePod, Logs: logs, Poll: 200 * time.Millisecond,
		OnBackends: func(appID string) { changed <- appID }, OnCronRun: func(r *CronRun) { runs <- r }})
	defer s.Close()
	ctx := context.Background()
	job := skiff.NewCronJob("* * * * *", "exit 0")
	f := &skiff.FormationSpec{AppID: "f000000000000001", AppName: "form", Release: 1, Image: nb.probe, Env: map[string]string{"GREETING": "one"},
		Processes: []skiff.ProcessSpec{{Type: "web", Quantity: 2, Limits: testLimits}, {Type: "worker", Quantity: 0, Limits: testLimits}},
		Check:     skiff.HealthCheck{Deadline: 20 * time.Second}, DrainTimeout: time.Second, Cron: []skiff.CronJob{job}}
	ns := s.Namespace(f.AppID)
	rollout := func(f *skiff.FormationSpec) (string, error) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		var lines []string
		err := s.Rollout(rctx, f, func(l string) { lines = append(lines, l) })
		return strings.Join(lines, "\n"), err
	}
	if out, err := rollout(f); err != nil {
		t.Fatalf("rollout of v1: %v\n%s", err, out)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: nb.DialContext}}
	get := func(addr string) string {
		t.Helper()
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET %s: %v", addr, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	addrs, err := s.Backends(ctx, f.AppID)
	if err != nil || len(addrs) != 2 {
		t.Fatalf("backends of web=2: %v %v", addrs, err)
	}
	for _, a := range addrs {
		if got := get(a); !strings.HasPrefix(got, "hello from web-") {
			t.Fatalf("%s answered %q", a, got)
		}
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("OnBackends was not told of the new endpoints")
	}
	// ps: two web pods, numbered 1 and 2, on the node.
	waitFor(t, "the web pods numbered", 10*time.Second, func() bool {
		ins, err := s.Instances(ctx, f.AppID)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, in := range ins {
			if in.State == skiff.InstanceUp && in.Node == "tb-node1" && in.Spec.Release == 1 {
				names[in.Spec.Name()] = true
			}
		}
		return len(names) == 2 && names["web.1"] && names["web.2"]
	})
	cj, err := nb.client.Typed.BatchV1().CronJobs(ns).Get(ctx, "cron-"+job.ID, metav1.GetOptions{})
	if err != nil || cj.Spec.ConcurrencyPolicy != "Forbid" || cj.Spec.Schedule != "* * * * *" || *cj.Spec.Suspend || *cj.Spec.TimeZone != "UTC" {
		t.Fatalf("the cron job's CronJob: %+v %v", cj, err)
	}

	// A new release replaces every pod; its predecessor's config goes.
	f.Release, f.Env = 2, map[string]string{"GREETING": "two", "TZ": "Europe/Paris"}
	before := podNames(t, nb, ns)
	if out, err := rollout(f); err != nil {
		t.Fatalf("rollout of v2: %v\n%s", err, out)
	}
	after := podNames(t, nb, ns)
	for n := range after {
		if before[n] {
			t.Errorf("pod %s of v1 is left after the rollout of v2", n)
		}
	}
	if _, err := nb.client.Typed.CoreV1().Secrets(ns).Get(ctx, "config-v1", metav1.GetOptions{}); !IsNotFound(err) {
		t.Errorf("the config of v1 is left: %v", err)
	}
	if cj, _ := nb.client.Typed.BatchV1().CronJobs(ns).Get(ctx, "cron-"+job.ID, metav1.GetOptions{}); cj == nil || *cj.Spec.TimeZone != "Europe/Paris" {
		t.Errorf("the cron job's zone after TZ was set: %+v", cj)
	}
	// The same formation again changes nothing; a restart replaces the pods.
	if _, err := rollout(f); err != nil || !sameKeys(podNames(t, nb, ns), after) {
		t.Fatalf("applying v2 again replaced pods: %v", err)
	}
	f.Restart = []string{"web"}
	if out, err := rollout(f); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	f.Restart = nil
	restarted := podNames(t, nb, ns)
	for n := range restarted {
		if after[n] {
			t.Errorf("pod %s outlived the restart", n)
		}
	}
	// A scale keeps a pod it need not replace.
	f.Processes[0].Quantity = 1
	if out, err := rollout(f); err != nil {
		t.Fatalf("scale to 1: %v\n%s", err, out)
	}
	if now := podNames(t, nb, ns); len(now) != 1 || !subset(now, restarted) {
		t.Fatalf("after scaling to 1: %v (before: %v)", now, restarted)
	}

	// An image the registry does not have fails with the cluster's reason;
	// applying v2 again brings it back.
	bad := *f
	bad.Release, bad.Image = 3, "sha256:"+strings.Repeat("0", 64)
	if out, err := rollout(&bad); skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "ErrImagePull") && !strings.Contains(err.Error(), "ImagePullBackOff") {
		t.Fatalf("rollout of a missing image: %v\n%s", err, out)
	}
	// The release that failed never ran a cron job: its CronJob was not
	// applied, and v2's kept its image.
	cjs, err := nb.client.Typed.BatchV1().CronJobs(ns).List(ctx, listApp(f.AppID))
	if err != nil || len(cjs.Items) != 1 {
		t.Fatalf("CronJobs after the failed release: %v %v", cjs, err)
	}
	if cj := cjs.Items[0]; cj.Labels[LabelRelease] != "2" || strings.Contains(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image, strings.Repeat("0", 64)) {
		t.Fatalf("the failed release's CronJob was applied: release %s, image %s", cj.Labels[LabelRelease], cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image)
	}
	if out, err := rollout(f); err != nil {
		t.Fatalf("roll back to v2: %v\n%s", err, out)
	}
	if addrs, _ := s.Backends(ctx, f.AppID); len(addrs) != 1 || !strings.HasPrefix(get(addrs[0]), "hello from web-") {
		t.Fatalf("backends after the rollback: %v", addrs)
	}
	// A volume on a cluster with no default StorageClass fails at once,
	// rather than waiting on a pod that cannot start; and one mounted by
	// a process type of two pods is refused before anything is applied.
	withMount := *f
	withMount.Processes = []skiff.ProcessSpec{{Type: "web", Quantity: 1, Mounts: []skiff.Mount{{Volume: "vol-0000000000000001", Path: "/data"}}}}
	if _, err := rollout(&withMount); skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "no default StorageClass") {
		t.Fatalf("a formation with a volume: %v", err)
	}
	withMount.Processes[0].Quantity = 2
	if _, err := rollout(&withMount); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "ReadWriteOnce") {
		t.Fatalf("a formation with a volume in two pods: %v", err)
	}
	if _, err := rollout(f); err != nil {
		t.Fatalf("back to the formation without a volume: %v", err)
	}

	// The cron job ran on the cluster's schedule, and its run was told.
	select {
	case r := <-runs:
		if r.AppID != f.AppID || r.JobID != job.ID || r.ExitCode != 0 || r.ScheduledAt.IsZero() || !strings.Contains(string(r.Output), "exiting 0") {
			t.Fatalf("cron run %+v (output %q)", r, r.Output)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the cron job did not run within 90 s")
	}

	// Evict removes everything; a rollout after it waits for the
	// namespace to go, then starts afresh.
	if err := s.Evict(ctx, f.AppID); err != nil {
		t.Fatal(err)
	}
	if out, err := rollout(f); err != nil {
		t.Fatalf("rollout after Evict: %v\n%s", err, out)
	}
	if err := s.RemoveApp(ctx, f.AppID); err != nil {
		t.Fatal(err)
	}
}

func podNames(t *testing.T, nb *nodeBed, ns string) map[string]bool {
	t.Helper()
	pods, err := nb.client.Typed.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: LabelProcess + "=web"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[p.Name] = true
		}
	}
	return out
}

func sameKeys(a, b map[string]bool) bool { return len(a) == len(b) && subset(a, b) }

func subset(a, b map[string]bool) bool {
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if err := waitUntil(d, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
