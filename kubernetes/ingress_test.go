package kubernetes

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// What a cluster in ingress mode gets, on the quick tier's API server,
// applied by a user with exactly rbac.yaml's grants. No ingress controller
// runs on the test bed: what is tested is what skiff applies (the Ingress,
// its content, its changes and its removal), not a controller serving it.

func ingressHosts(in *networkingv1.Ingress) []string {
	var out []string
	for _, r := range in.Spec.Rules {
		out = append(out, r.Host)
	}
	return out
}

func TestIngressApplied(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	c := userClient(t, "skiff")
	if _, err := c.Check(ctx, Where{IngressClass: "nginx"}); err != nil {
		t.Fatalf("rbac.yaml's grants do not pass the check of ingress mode: %v", err)
	}
	const ns, id = "skiff-front", "00000000000000c1"
	r := sample(ns, id, "front", 1)
	r.Ingress = &Ingress{Class: "nginx", Hosts: []string{"www.example.com", "front.skiff.test", "*.shop.example.com", "www.example.com"}}
	m := applyRelease(t, c, r)
	if err := c.Prune(ctx, r, m); err != nil {
		t.Fatal(err)
	}
	ings := c.Typed.NetworkingV1().Ingresses(ns)
	in, err := ings.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the app's Ingress: %v", err)
	}
	if in.Spec.IngressClassName == nil || *in.Spec.IngressClassName != "nginx" {
		t.Errorf("class %v", in.Spec.IngressClassName)
	}
	if got := strings.Join(ingressHosts(in), " "); got != "*.shop.example.com front.skiff.test www.example.com" {
		t.Errorf("hosts %s", got)
	}
	for _, rule := range in.Spec.Rules {
		p := rule.HTTP.Paths
		if len(p) != 1 || p[0].Path != "/" || *p[0].PathType != networkingv1.PathTypePrefix ||
			p[0].Backend.Service.Name != "web" || p[0].Backend.Service.Port.Name != "http" {
			t.Errorf("rule %s: %+v", rule.Host, p)
		}
	}
	if len(in.Spec.TLS) != 0 || len(in.Annotations) != 0 {
		t.Errorf("TLS is the cluster's, but the Ingress has %+v %v", in.Spec.TLS, in.Annotations)
	}
	if in.Labels[LabelManagedBy] != ManagedBy || in.Labels[LabelAppID] != id {
		t.Errorf("labels %v", in.Labels)
	}
	if f := in.ManagedFields; len(f) == 0 || f[0].Manager != FieldManager || f[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managed fields %+v", f)
	}

	// The cluster's admin's own Ingress in the app's namespace, without
	// skiff's labels (one with a look-alike label): never touched.
	admin := clientFor(t, bed.AdminKubeconfig())
	foreign := in.DeepCopy()
	foreign.ObjectMeta = metav1.ObjectMeta{Name: "admins", Namespace: ns, Labels: map[string]string{LabelApp: "front"}}
	if _, err := admin.Typed.NetworkingV1().Ingresses(ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A domain removed and one added: the same Ingress, its rules changed.
	r2 := sample(ns, id, "front", 2)
	r2.Ingress = &Ingress{Class: "nginx", Hosts: []string{"front.skiff.test", "api.example.com"}}
	m2 := applyRelease(t, c, r2)
	if err := c.Prune(ctx, r2, m2); err != nil {
		t.Fatal(err)
	}
	if in2, err := ings.Get(ctx, "web", metav1.GetOptions{}); err != nil || strings.Join(ingressHosts(in2), " ") != "api.example.com front.skiff.test" || in2.UID != in.UID {
		t.Fatalf("after a domain change: %v %v", ingressHosts(in2), err)
	}

	// No web process: nothing to expose, the Ingress is pruned.
	r3 := sample(ns, id, "front", 3)
	r3.Ingress = r2.Ingress
	r3.Processes = r3.Processes[1:]
	m3 := applyRelease(t, c, r3)
	if len(m3.Ingresses) != 0 {
		t.Fatalf("an Ingress without a web process: %+v", m3.Ingresses)
	}
	if err := c.Prune(ctx, r3, m3); err != nil {
		t.Fatal(err)
	}
	if _, err := ings.Get(ctx, "web", metav1.GetOptions{}); !IsNotFound(err) {
		t.Fatalf("the Ingress of an app without web: %v", err)
	}

	// Back with web, then the cluster back to skiff's router: pruned.
	applyRelease(t, c, r2)
	r4 := sample(ns, id, "front", 4)
	m4 := applyRelease(t, c, r4)
	if err := c.Prune(ctx, r4, m4); err != nil {
		t.Fatal(err)
	}
	if _, err := ings.Get(ctx, "web", metav1.GetOptions{}); !IsNotFound(err) {
		t.Fatalf("the Ingress after the cluster went back to skiff's router: %v", err)
	}

	// The app removed from a namespace it shares: its Ingress goes, the
	// admin's stays.
	applyRelease(t, c, r2)
	if err := c.RemoveApp(ctx, ns, id, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ings.Get(ctx, "web", metav1.GetOptions{}); !IsNotFound(err) {
		t.Fatalf("the Ingress after the app was removed: %v", err)
	}
	if got, err := ings.Get(ctx, "admins", metav1.GetOptions{}); err != nil || got.DeletionTimestamp != nil {
		t.Fatalf("the admin's Ingress: %v", err)
	}
}

// A cluster that does not grant ingresses: clusters:add passes without an
// ingress class and names the missing grants with one; pruning and
// removing an app there need no ingresses grant.
func TestIngressGrantRequiredOnlyInIngressMode(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	admin := clientFor(t, bed.AdminKubeconfig())
	var rules []rbacv1.PolicyRule
	for _, r := range Rules() {
		if !slices.Contains(r.Resources, "ingresses") {
			rules = append(rules, r)
		}
	}
	role, err := yaml.Marshal(rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: "skiff-no-ingress"}, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range [][]byte{role, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: skiff-no-ingress}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: skiff-no-ingress}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: skiff-no-ingress}]`)} {
		if err := createRBAC(ctx, admin, doc); err != nil {
			t.Fatal(err)
		}
	}
	c := userClient(t, "skiff-no-ingress")
	if _, err := c.Check(ctx, Where{}); err != nil {
		t.Fatalf("without an ingress class the ingresses grant is needed: %v", err)
	}
	_, err = c.Check(ctx, Where{IngressClass: "nginx"})
	if err == nil {
		t.Fatal("ingress mode passed the check without the ingresses grant")
	}
	for _, want := range []string{"create ingresses.networking.k8s.io", "patch ingresses.networking.k8s.io", "delete ingresses.networking.k8s.io"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "deployments") {
		t.Errorf("the error names a grant the user has: %v", err)
	}
	r := sample("skiff-plain", "00000000000000c2", "plain", 1)
	m := applyRelease(t, c, r)
	if err := c.Prune(ctx, r, m); err != nil {
		t.Fatalf("prune on a cluster without the ingresses grant: %v", err)
	}
	if err := c.RemoveApp(ctx, "skiff-plain", r.AppID, true); err != nil {
		t.Fatalf("remove an app from a cluster without the ingresses grant: %v", err)
	}
	r.Ingress = &Ingress{Class: "nginx", Hosts: []string{"plain.skiff.test"}}
	m, _ = Render(r)
	if err := c.ApplyAll(ctx, m.Objects()); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("an Ingress applied without the grant: %v", err)
	}
}

// Render refuses what would make a bad Ingress, before anything is applied.
func TestRenderIngressRefuses(t *testing.T) {
	base := func() *Release {
		return &Release{Namespace: "skiff-a", AppID: "id", App: "a", Version: 1, Image: "r/a@sha256:00",
			Processes: []Process{{Type: "web", Replicas: 1}}}
	}
	for _, in := range []*Ingress{
		{Class: "", Hosts: []string{"a.example.com"}},
		{Class: "Nginx", Hosts: []string{"a.example.com"}},
		{Class: "nginx", Hosts: []string{"a.example.com", "bad host"}},
		{Class: "nginx", Hosts: []string{"a.example.com/evil"}},
	} {
		r := base()
		r.Ingress = in
		if _, err := Render(r); err == nil {
			t.Errorf("%+v was rendered", in)
		}
	}
	r := base()
	r.Ingress = &Ingress{Class: "nginx"}
	if m, err := Render(r); err != nil || len(m.Ingresses) != 0 {
		t.Errorf("no hosts: %v %v", m, err)
	}
	r.Ingress.Hosts = []string{"a.example.com"}
	m, err := Render(r)
	if err != nil || len(m.Ingresses) != 1 || !bytes.Contains(must(yaml.Marshal(m.Ingresses[0])), []byte("ingressClassName: nginx")) {
		t.Fatalf("%v %v", m, err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
