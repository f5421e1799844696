package k8s

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/kubernetes"
)

// A cluster in ingress mode (clusters:add --ingress-class): each app gets
// an Ingress of that class for its hosts, which follows domains:add and
// domains:remove, goes when the cluster is set back to skiff's router
// (which then serves the app again), and goes with the app. The test bed
// runs no ingress controller: what is checked is what skiff applies, and
// that the Ingress's backend Service lists the app's ready pod (what a
// controller would send the traffic to).
func TestIngressMode(t *testing.T) {
	d, admin, c := onCluster(t)
	kc, err := os.ReadFile(filepath.Join(d.dir, "skiff.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if r := d.local(string(kc), "clusters:add", "tbi", "--ingress-class", "Nginx"); r.code != 1 || !strings.Contains(r.stderr, "invalid ingress class") {
		t.Fatalf("a bad ingress class: %s", r)
	}
	must(t, d.local(string(kc), "clusters:add", "tbi", "--ingress-class", "nginx"), "clusters:add --ingress-class", "traffic through ingress nginx")
	must(t, d.ssh(admin, "clusters"), "clusters", "ingress nginx", "skiff's router")
	t.Cleanup(func() { d.local("", "clusters:remove", "tbi") })

	alice := newKey(d.dir, "alice")
	must(t, d.local(alice.authorizedKey()+"\n", "keys:add", "alice"), "keys:add alice")
	mallory := newKey(d.dir, "mallory")
	must(t, d.local(mallory.authorizedKey()+"\n", "keys:add", "mallory"), "keys:add mallory")
	const app = "front"
	must(t, d.ssh(alice, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s", "--cluster", "tbi"), "scheduler:set", "cluster tbi")
	src := repo(t, pyApp("1"))
	gitIn(t, src, "remote", "add", "skiff", d.remote(app))
	must(t, d.git(alice, src, "push", "skiff", "main"), "the push", "Rolling out v1 on cluster tbi", "1 of 1 new pods ready", "Released v1")

	ns := "skiff-" + appID(t, d, alice, app)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ingress := func() (*networkingv1.Ingress, error) {
		return cl.Typed.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
	}
	hosts := func(want ...string) {
		t.Helper()
		in, err := ingress()
		if err != nil {
			t.Fatalf("the app's Ingress: %v", err)
		}
		var got []string
		for _, r := range in.Spec.Rules {
			got = append(got, r.Host)
			if p := r.HTTP.Paths; len(p) != 1 || p[0].Backend.Service.Name != "web" || p[0].Backend.Service.Port.Name != "http" {
				t.Fatalf("rule %s: %+v", r.Host, p)
			}
		}
		slices.Sort(want)
		if strings.Join(got, " ") != strings.Join(want, " ") || *in.Spec.IngressClassName != "nginx" ||
			in.Labels[kubernetes.LabelManagedBy] != kubernetes.ManagedBy || len(in.Spec.TLS) != 0 {
			t.Fatalf("the Ingress: hosts %v (want %v), class %s, labels %v, tls %v", got, want, *in.Spec.IngressClassName, in.Labels, in.Spec.TLS)
		}
	}
	hosts("front.skiff.test")
	must(t, d.ssh(alice, "scheduler:report", app), "scheduler:report", "Ingress of class nginx")
	// What a controller would route to: the Service's ready endpoints.
	eventually(t, "the web Service's ready pod", 20*time.Second, func() error {
		sl, err := cl.Typed.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
		if err != nil {
			return err
		}
		for _, s := range sl.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					return nil
				}
			}
		}
		return errorf("no ready endpoint in %d slices", len(sl.Items))
	})
	// skiff's router serves the app no more: its hosts point at the cluster.
	if code, body, err := d.get(app, "/"); err != nil || code == 200 {
		t.Fatalf("skiff's router serves an app of an ingress cluster: %d %q %v", code, body, err)
	}

	must(t, d.ssh(alice, "domains:add", app, "www.front.test"), "domains:add")
	hosts("front.skiff.test", "www.front.test")
	// Another user changes nothing of it.
	for _, args := range [][]string{{"domains:add", app, "evil.test"}, {"domains:remove", app, "www.front.test"}, {"clusters:set", "tbi", "ingress-class"}} {
		if r := d.ssh(mallory, args...); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
			t.Fatalf("%v by mallory: %s", args, r)
		}
	}
	must(t, d.ssh(mallory, "apps:create", "mine"), "mallory's app")
	if r := d.ssh(mallory, "domains:add", "mine", "www.front.test"); r.code == 0 {
		t.Fatalf("mallory took alice's domain: %s", r)
	}
	hosts("front.skiff.test", "www.front.test")
	must(t, d.ssh(alice, "domains:remove", app, "www.front.test"), "domains:remove")
	hosts("front.skiff.test")

	// Back to skiff's router: the Ingress goes, the router serves the app.
	must(t, d.ssh(admin, "clusters:set", "tbi", "ingress-class"), "clusters:set back", "Applying front again", "traffic through skiff's router")
	if _, err := ingress(); !kubernetes.IsNotFound(err) {
		t.Fatalf("the Ingress after clusters:set back to skiff's router: %v", err)
	}
	eventually(t, "the router serving the app again", 20*time.Second, func() error {
		if code, body, err := d.get(app, "/"); err != nil || code != 200 || !strings.Contains(body, `"version": "1"`) {
			return errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	must(t, d.ssh(admin, "clusters:set", "tbi", "ingress-class", "nginx"), "clusters:set ingress", "traffic through ingress nginx")
	hosts("front.skiff.test")

	// Back to this server: the namespace and its Ingress go, skiff's
	// router serves the app's local instances.
	must(t, d.ssh(admin, "scheduler:set", app, "local"), "scheduler:set local", "Removing front from cluster tbi")
	eventually(t, "the namespace (and its Ingress) gone", time.Minute, func() error {
		if _, err := cl.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !kubernetes.IsNotFound(err) {
			return errorf("namespace %s: %v", ns, err)
		}
		return nil
	})
	if code, body, err := d.get(app, "/"); err != nil || code != 200 || !strings.Contains(body, `"version": "1"`) {
		t.Fatalf("the app on this server: %d %q %v", code, body, err)
	}
	must(t, d.ssh(admin, "scheduler:set", app, "k8s", "--cluster", "tbi"), "scheduler:set back", "cluster tbi")
	hosts("front.skiff.test")

	// By an admin: an owner destroying their own app may see its session
	// end (its access revoked) before the command's status.
	must(t, d.ssh(admin, "apps:destroy", app, "--force"), "apps:destroy")
	eventually(t, "the app's namespace gone", time.Minute, func() error {
		if _, err := cl.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !kubernetes.IsNotFound(err) {
			return errorf("namespace %s: %v", ns, err)
		}
		return nil
	})
	must(t, d.local("", "clusters:remove", "tbi"), "clusters:remove")
}

// kill -9 of skiff in the middle of a rollout on a cluster in ingress
// mode, which the cluster then finishes by itself: the next daemon tells
// from the cluster's Deployments (not through its own router, which
// carries no traffic of an Ingress) that the release took over, and keeps
// it, rather than rolling back a release that runs and serves.
func TestKilledMidRolloutIngressMode(t *testing.T) {
	d, admin, c := onCluster(t)
	kc, err := os.ReadFile(filepath.Join(d.dir, "skiff.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, d.local(string(kc), "clusters:add", "tbk", "--ingress-class", "nginx"), "clusters:add --ingress-class")
	t.Cleanup(func() { d.local("", "clusters:remove", "tbk") })
	const app = "kdeadi"
	must(t, d.ssh(admin, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s", "--cluster", "tbk"), "scheduler:set", "cluster tbk")
	must(t, d.git(admin, repo(t, pyApp("1")), "push", d.remote(app), "main"), "push", "Released v1")
	ns := "skiff-" + appID(t, d, admin, app)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if out := killMidRollout(t, d, admin, app); strings.Contains(out, "Released v2") {
		t.Fatalf("the daemon was killed after the release:\n%s", out)
	}
	// The cluster goes on with the rollout without skiff.
	eventually(t, "the cluster done with the rollout of v2", 2*time.Minute, func() error {
		web, err := cl.Typed.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := web.Status
		if web.Spec.Template.Labels[kubernetes.LabelRelease] != "2" || st.ObservedGeneration < web.Generation ||
			st.UpdatedReplicas != *web.Spec.Replicas || st.Replicas != *web.Spec.Replicas || st.AvailableReplicas != *web.Spec.Replicas {
			return errorf("web: release %s, status %+v", web.Spec.Template.Labels[kubernetes.LabelRelease], st)
		}
		for p, rel := range podReleases(t, cl, ns) {
			if rel != "2" {
				return errorf("pod %s of v%s", p, rel)
			}
		}
		return nil
	})
	if err := d.start(d.netns, d.args...); err != nil {
		t.Fatal(err)
	}
	var rels []struct {
		Version int
		Current bool
		Status  string
	}
	eventually(t, "v2 current, nothing pending", time.Minute, func() error {
		r := d.ssh(admin, "releases", app, "--format", "json")
		if err := json.Unmarshal([]byte(r.stdout), &rels); err != nil {
			return errorf("releases: %s", r)
		}
		for _, rel := range rels {
			if rel.Status == "pending" || rel.Current && rel.Version != 2 {
				return errorf("releases %+v", rels)
			}
		}
		return nil
	})
	// Kept, not rolled back: the cluster still runs v2's pods only.
	time.Sleep(5 * time.Second)
	web, err := cl.Typed.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || web.Spec.Template.Labels[kubernetes.LabelRelease] != "2" {
		t.Fatalf("the web Deployment after the restart: %v %v\nreleases %+v", web.Spec.Template.Labels, err, rels)
	}
	for p, rel := range podReleases(t, cl, ns) {
		if rel != "2" {
			t.Fatalf("pod %s of v%s after the restart kept v2", p, rel)
		}
	}
	must(t, d.ssh(admin, "apps:destroy", app, "--force"), "apps:destroy")
	eventually(t, "the app's namespace gone", 2*time.Minute, func() error {
		if _, err := cl.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !kubernetes.IsNotFound(err) {
			return errorf("namespace %s: %v", ns, err)
		}
		return nil
	})
	must(t, d.local("", "clusters:remove", "tbk"), "clusters:remove")
}
