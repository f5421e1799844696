package kubernetes

// The quick tier: a real etcd and kube-apiserver (internal/k8stestbed, no
// nodes), every manifest skiff renders applied server-side by a user that
// has exactly the grants of rbac.yaml.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/k8stestbed"
)

var (
	bedOnce sync.Once
	bed     *k8stestbed.Cluster
	bedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	beds := nodeBeds
	if bed != nil {
		beds = append(beds, bed)
	}
	for _, b := range beds {
		if err := b.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the test bed:", err)
			code = 1
		}
		if left := b.Leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "the test bed left on the host:\n%s\n", strings.Join(left, "\n"))
			code = 1
		}
	}
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// controlPlane is the package's one quick-tier cluster (etcd and the API
// server), with rbac.yaml applied as it is (skiff is the user "skiff").
func controlPlane(t *testing.T) *k8stestbed.Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes test bed needs root (sudo make test runs it)")
	}
	bedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		bed, bedErr = k8stestbed.Start(ctx, k8stestbed.Options{Log: t.Logf})
		if bedErr != nil {
			return
		}
		admin := clientFor(t, bed.AdminKubeconfig())
		for _, doc := range bytes.Split(RBAC, []byte("\n---\n")) {
			if bedErr = createRBAC(ctx, admin, doc); bedErr != nil {
				return
			}
		}
	})
	if bedErr != nil {
		t.Fatal(bedErr)
	}
	return bed
}

// createRBAC creates one RBAC document as the administrator.
func createRBAC(ctx context.Context, admin *Client, doc []byte) error {
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	rbac := admin.Typed.RbacV1()
	var err error
	switch meta.Kind {
	case "ClusterRole":
		var o rbacv1.ClusterRole
		if err = yaml.Unmarshal(doc, &o); err == nil {
			_, err = rbac.ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
		}
	case "ClusterRoleBinding":
		var o rbacv1.ClusterRoleBinding
		if err = yaml.Unmarshal(doc, &o); err == nil {
			_, err = rbac.ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
		}
	case "RoleBinding":
		var o rbacv1.RoleBinding
		if err = yaml.Unmarshal(doc, &o); err == nil {
			_, err = rbac.RoleBindings(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
		}
	default:
		err = fmt.Errorf("rbac.yaml: unexpected kind %q", meta.Kind)
	}
	return err
}

// clientFor is a client of the test bed for the kubeconfig's user.
func clientFor(t *testing.T, kubeconfig []byte) *Client {
	t.Helper()
	cfg, err := RESTConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dial = bed.DialContext
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// userClient is a client as a user the cluster knows only by name.
func userClient(t *testing.T, user string) *Client {
	t.Helper()
	kc, err := bed.UserKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	return clientFor(t, kc)
}

func sample(ns, appID, app string, version int) *Release {
	uid := int64(1000)
	return &Release{
		Namespace: ns, AppID: appID, App: app, Version: version,
		Image:  "registry.skiff.test:5443/" + app + "@sha256:" + strings.Repeat("ab", 32),
		UID:    &uid,
		GID:    &uid,
		Config: map[string]string{"GREETING": "hello\nworld ünïcode", "DATABASE_URL": "postgres://x"},
		Processes: []Process{
			{Type: "web", Replicas: 2, Limits: skiff.Limits{MemoryBytes: 256 << 20, CPU: 0.5}},
			{Type: "worker", Command: []string{"/cnb/process/worker"}, Replicas: 1},
		},
		Cron: []CronJob{{ID: "abcdefgh23", Schedule: "*/5 * * * *", TimeZone: "Europe/Paris",
			Command: []string{"/cnb/lifecycle/launcher"}, Args: []string{"rake cleanup"}}},
		Check:    Check{Path: "/up", Timeout: 3 * time.Second, Deadline: 30 * time.Second, WaitToRetire: 10 * time.Second},
		Registry: &Registry{Server: "registry.skiff.test:5443", Username: "cluster-prod", Password: "s3cret"},
	}
}

func applyRelease(t *testing.T, c *Client, r *Release) *Manifest {
	t.Helper()
	m, err := Render(r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.ApplyAll(ctx, m.Objects()); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApplyEveryManifest(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	skiffUser := userClient(t, "skiff")
	if v, err := skiffUser.Check(ctx, Where{}); err != nil || v != "v1.37.2" {
		t.Fatalf("check: %q %v", v, err)
	}
	r := sample("skiff-shop", "a1b2c3d4e5f60718", "shop", 1)
	applyRelease(t, skiffUser, r)
	applyRelease(t, skiffUser, r) // applying again changes nothing and fails nothing

	core, apps := skiffUser.Typed.CoreV1(), skiffUser.Typed.AppsV1()
	ns, err := core.Namespaces().Get(ctx, "skiff-shop", metav1.GetOptions{})
	if err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" || ns.Labels[LabelAppID] != r.AppID {
		t.Fatalf("namespace: %v %v", ns.Labels, err)
	}
	web, err := apps.Deployments("skiff-shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f := web.ManagedFields; len(f) == 0 || f[0].Manager != FieldManager || f[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managed fields: %+v", f)
	}
	pod := web.Spec.Template.Spec
	c := pod.Containers[0]
	switch {
	case *web.Spec.Replicas != 2:
		t.Errorf("replicas %d", *web.Spec.Replicas)
	case web.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0:
		t.Errorf("maxUnavailable %v", web.Spec.Strategy.RollingUpdate.MaxUnavailable)
	case c.Image != r.Image || !strings.Contains(c.Image, "@sha256:"):
		t.Errorf("image %s", c.Image)
	case c.StartupProbe == nil || c.StartupProbe.HTTPGet.Path != "/up" || c.StartupProbe.FailureThreshold != 30:
		t.Errorf("startup probe %+v", c.StartupProbe)
	case c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/up" || c.ReadinessProbe.TimeoutSeconds != 3:
		t.Errorf("readiness probe %+v", c.ReadinessProbe)
	case c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 5:
		t.Errorf("preStop %+v", c.Lifecycle.PreStop)
	case *pod.TerminationGracePeriodSeconds != 15:
		t.Errorf("grace %d", *pod.TerminationGracePeriodSeconds)
	case len(pod.TopologySpreadConstraints) != 1 || *pod.TopologySpreadConstraints[0].NodeTaintsPolicy != corev1.NodeInclusionPolicyHonor:
		t.Errorf("spread %+v", pod.TopologySpreadConstraints)
	case pod.ShareProcessNamespace == nil || !*pod.ShareProcessNamespace:
		t.Errorf("the app would be its pod's pid 1")
	case pod.ServiceAccountName != ServiceAccountName || *pod.AutomountServiceAccountToken:
		t.Errorf("service account %s %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	case len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != PullSecretName:
		t.Errorf("pull secrets %+v", pod.ImagePullSecrets)
	case c.Resources.Limits.Memory().Value() != 256<<20 || c.Resources.Requests.Cpu().MilliValue() != 50:
		t.Errorf("resources %+v", c.Resources)
	case c.EnvFrom[0].SecretRef.Name != "config-v1":
		t.Errorf("envFrom %+v", c.EnvFrom)
	}
	worker, err := apps.Deployments("skiff-shop").Get(ctx, "worker", metav1.GetOptions{})
	if err != nil || worker.Spec.Template.Spec.Containers[0].ReadinessProbe != nil || worker.Spec.Template.Spec.Containers[0].Command[0] != "/cnb/process/worker" {
		t.Fatalf("worker: %v", err)
	}
	sa, err := core.ServiceAccounts("skiff-shop").Get(ctx, ServiceAccountName, metav1.GetOptions{})
	if err != nil || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Fatalf("service account: %+v %v", sa, err)
	}
	cfg, err := core.Secrets("skiff-shop").Get(ctx, "config-v1", metav1.GetOptions{})
	if err != nil || cfg.Immutable == nil || !*cfg.Immutable || string(cfg.Data["GREETING"]) != "hello\nworld ünïcode" {
		t.Fatalf("config secret: %v", err)
	}
	pull, err := core.Secrets("skiff-shop").Get(ctx, PullSecretName, metav1.GetOptions{})
	if err != nil || pull.Type != corev1.SecretTypeDockerConfigJson || !bytes.Contains(pull.Data[".dockerconfigjson"], []byte("registry.skiff.test:5443")) {
		t.Fatalf("pull secret: %v", err)
	}
	svc, err := core.Services("skiff-shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || svc.Spec.Ports[0].TargetPort.StrVal != "http" || svc.Spec.Selector[LabelProcess] != "web" {
		t.Fatalf("service: %v", err)
	}
	if _, err := skiffUser.Typed.PolicyV1().PodDisruptionBudgets("skiff-shop").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatalf("web's budget: %v", err)
	}
	if _, err := skiffUser.Typed.PolicyV1().PodDisruptionBudgets("skiff-shop").Get(ctx, "worker", metav1.GetOptions{}); !IsNotFound(err) {
		t.Fatalf("a budget for 1 worker: %v", err)
	}

	// The pod the Deployment makes meets the namespace's restricted Pod
	// Security level (a dry run: no node runs it).
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "skiff-shop", Labels: web.Spec.Template.Labels},
		Spec: web.Spec.Template.Spec}
	if _, err := core.Pods("skiff-shop").Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("the rendered pod is refused: %v", err)
	}
	// And one that is not restricted is refused there.
	p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	if _, err := core.Pods("skiff-shop").Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil || !strings.Contains(err.Error(), "restricted") {
		t.Fatalf("a pod outside the restricted level was admitted: %v", err)
	}

	// The cron job: never two runs at once, the app's time zone, a pod
	// that is not retried and meets the restricted level too.
	cj, err := skiffUser.Typed.BatchV1().CronJobs("skiff-shop").Get(ctx, "cron-abcdefgh23", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the cron job: %v", err)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != "Europe/Paris" ||
		*cj.Spec.JobTemplate.Spec.BackoffLimit != 0 || cj.Labels[LabelCronJob] != "abcdefgh23" {
		t.Errorf("cron job %+v", cj.Spec)
	}
	cp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cron-probe", Namespace: "skiff-shop", Labels: cj.Spec.JobTemplate.Spec.Template.Labels},
		Spec: cj.Spec.JobTemplate.Spec.Template.Spec}
	if _, err := core.Pods("skiff-shop").Create(ctx, cp, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("the cron job's pod is refused: %v", err)
	}

	// v2: new config, web scaled to 1, worker and the cron job gone, no
	// registry.
	r2 := sample("skiff-shop", r.AppID, "shop", 2)
	r2.Config = map[string]string{"GREETING": "v2"}
	r2.Processes = r2.Processes[:1]
	r2.Processes[0].Replicas = 1
	r2.Registry = nil
	r2.Cron = nil
	m2 := applyRelease(t, skiffUser, r2)
	if err := skiffUser.Prune(ctx, r2, m2, 1); err != nil {
		t.Fatal(err)
	}
	web, _ = apps.Deployments("skiff-shop").Get(ctx, "web", metav1.GetOptions{})
	if web.Spec.Template.Spec.Containers[0].EnvFrom[0].SecretRef.Name != "config-v2" || len(web.Spec.Template.Spec.ImagePullSecrets) != 0 {
		t.Errorf("web after v2: %+v", web.Spec.Template.Spec)
	}
	for _, gone := range []error{
		get(apps.Deployments("skiff-shop").Get(ctx, "worker", metav1.GetOptions{})),
		get(skiffUser.Typed.PolicyV1().PodDisruptionBudgets("skiff-shop").Get(ctx, "web", metav1.GetOptions{})),
		get(core.Secrets("skiff-shop").Get(ctx, PullSecretName, metav1.GetOptions{})),
		get(skiffUser.Typed.BatchV1().CronJobs("skiff-shop").Get(ctx, "cron-abcdefgh23", metav1.GetOptions{})),
	} {
		if !IsNotFound(gone) {
			t.Errorf("prune left an object: %v", gone)
		}
	}
	if _, err := core.Secrets("skiff-shop").Get(ctx, "config-v1", metav1.GetOptions{}); err != nil {
		t.Errorf("the kept release's config is gone: %v", err)
	}
	// A later prune that keeps nothing old removes v1's config.
	if err := skiffUser.Prune(ctx, r2, m2); err != nil {
		t.Fatal(err)
	}
	if _, err := core.Secrets("skiff-shop").Get(ctx, "config-v1", metav1.GetOptions{}); !IsNotFound(err) {
		t.Errorf("config-v1 after a prune that keeps only v2: %v", err)
	}
}

func get[T any](_ T, err error) error { return err }

func TestReleaseConfigIsImmutable(t *testing.T) {
	controlPlane(t)
	c := userClient(t, "skiff")
	r := sample("skiff-immutable", "0000000000000001", "immutable", 1)
	applyRelease(t, c, r)
	r.Config["GREETING"] = "changed"
	m, _ := Render(r)
	err := c.Apply(context.Background(), m.Config)
	if err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("changing a release's config: %v", err)
	}
}

func TestCheckListsMissingGrants(t *testing.T) {
	controlPlane(t)
	_, err := userClient(t, "stranger").Check(context.Background(), Where{})
	if skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("a user without grants: %v", err)
	}
	for _, want := range []string{"create deployments.apps", "create namespaces", "get pods/log", "list endpointslices.discovery.k8s.io", "cluster-wide"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "ingresses") || strings.Contains(err.Error(), "storageclasses") {
		t.Errorf("ingresses or StorageClasses are asked for without --ingress-class or --storage-class: %v", err)
	}
	_, err = userClient(t, "stranger").Check(context.Background(), Where{StorageClass: "fast"})
	if err == nil || !strings.Contains(err.Error(), "list storageclasses.storage.k8s.io") {
		t.Fatalf("a storage class without the grant to read StorageClasses: %v", err)
	}
	if _, err := userClient(t, "skiff").Check(context.Background(), Where{StorageClass: "fast"}); err != nil {
		t.Fatalf("rbac.yaml's grants with a storage class: %v", err)
	}
}

// A cluster added with --namespace: the same ClusterRole bound in one
// namespace lets skiff run every app there and do nothing elsewhere.
func TestOneSharedNamespace(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	admin := clientFor(t, bed.AdminKubeconfig())
	if _, err := admin.Typed.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: skiff, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: skiff}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: skiff-team}]`)
	if err := createRBAC(ctx, admin, binding); err != nil {
		t.Fatal(err)
	}
	c := userClient(t, "skiff-team")
	if _, err := c.Check(ctx, Where{Namespace: "team"}); err != nil {
		t.Fatalf("check in team: %v", err)
	}
	if _, err := c.Check(ctx, Where{}); err == nil {
		t.Fatal("a namespace-bound skiff passes the cluster-wide check")
	}
	// StorageClasses are cluster-wide: the namespace's binding does not
	// grant them, and the error says so, not "in namespace team".
	_, err := c.Check(ctx, Where{Namespace: "team", StorageClass: "fast"})
	if err == nil || !strings.Contains(err.Error(), "list storageclasses.storage.k8s.io cluster-wide") ||
		strings.Contains(err.Error(), "in namespace team") || !strings.Contains(err.Error(), "ClusterRoleBinding") {
		t.Fatalf("a namespace-bound skiff with a storage class: %v", err)
	}
	if _, err := c.Check(ctx, Where{Namespace: "missing"}); err == nil || !strings.Contains(err.Error(), "RoleBinding in it") {
		t.Fatalf("check of a missing namespace: %v", err)
	}

	long := strings.Repeat("a", 63)
	for _, r := range []*Release{sample("team", "00000000000000a1", "shop", 1), sample("team", "00000000000000a2", long, 1)} {
		r.Shared = true
		applyRelease(t, c, r)
	}
	if _, err := c.Typed.AppsV1().Deployments("team").Get(ctx, "shop-web", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// Nothing beyond the namespace: not another namespace's secrets, not a
	// namespace of its own.
	if _, err := c.Typed.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("a namespace-bound skiff lists kube-system's secrets")
	}
	if _, err := c.Typed.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}, metav1.CreateOptions{}); err == nil {
		t.Error("a namespace-bound skiff creates namespaces")
	}

	// Removing one app leaves the other app and what skiff did not make.
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-web-copy", Namespace: "team",
		Labels: map[string]string{LabelApp: "shop"}}, Spec: *mustGet(t, c, "team", "shop-web").Spec.DeepCopy()}
	foreign.Spec.Template.Labels = map[string]string{"x": "y"}
	foreign.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"x": "y"}}
	if _, err := admin.Typed.AppsV1().Deployments("team").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveApp(ctx, "team", "00000000000000a1", true); err != nil {
		t.Fatal(err)
	}
	left, _ := c.Typed.AppsV1().Deployments("team").List(ctx, metav1.ListOptions{})
	var names []string
	for _, d := range left.Items {
		names = append(names, d.Name)
	}
	longApp := &Release{Shared: true, App: long}
	want := []string{longApp.Name("web"), longApp.Name("worker"), "shop-web-copy"}
	slices.Sort(want)
	slices.Sort(names)
	if got := strings.Join(names, " "); got != strings.Join(want, " ") {
		t.Fatalf("deployments left in team: %s", got)
	}
	if secrets, _ := c.Typed.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{LabelSelector: AppSelector("00000000000000a1")}); len(secrets.Items) != 0 {
		t.Fatalf("the removed app's secrets are left: %d", len(secrets.Items))
	}
}

func mustGet(t *testing.T, c *Client, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.Typed.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// RemoveApp deletes the app's own namespace, and not a namespace that only
// looks like one of skiff's (another app's, or one skiff did not label).
func TestRemoveAppNamespace(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	c := userClient(t, "skiff")
	applyRelease(t, c, sample("skiff-gone", "00000000000000b1", "gone", 1))
	applyRelease(t, c, sample("skiff-other", "00000000000000b2", "other", 1))
	if err := c.RemoveApp(ctx, "skiff-other", "00000000000000b1", false); err != nil {
		t.Fatal(err)
	}
	if ns, err := c.Typed.CoreV1().Namespaces().Get(ctx, "skiff-other", metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("another app's namespace was deleted: %v", err)
	}
	if d := mustGet(t, c, "skiff-other", "web"); d.DeletionTimestamp != nil {
		t.Fatal("another app's deployment was deleted")
	}
	if err := c.RemoveApp(ctx, "skiff-gone", "00000000000000b1", false); err != nil {
		t.Fatal(err)
	}
	// Without a controller manager the namespace stays Terminating.
	ns, err := c.Typed.CoreV1().Namespaces().Get(ctx, "skiff-gone", metav1.GetOptions{})
	if err == nil && ns.DeletionTimestamp == nil {
		t.Fatal("the app's namespace is not being deleted")
	}
	if err := c.RemoveApp(ctx, "skiff-never", "00000000000000b9", false); err != nil {
		t.Fatalf("removing an app with nothing on the cluster: %v", err)
	}
}

// A cluster without the PodLogsQuerySplitStreams feature (most, and the
// quick tier's) refuses a log request for one stream in a way
// SplitStreamsRefused knows, so runs fall back to both streams on stdout.
func TestSplitStreamsRefusedWithoutTheFeature(t *testing.T) {
	controlPlane(t)
	c := userClient(t, "skiff")
	stream := "Stderr"
	_, err := c.Typed.CoreV1().Pods("default").GetLogs("no-such-pod", &corev1.PodLogOptions{Stream: &stream}).Stream(context.Background())
	if err == nil || !SplitStreamsRefused(err) {
		t.Fatalf("a log request for stderr alone: %v", err)
	}
	if _, err := c.Typed.CoreV1().Pods("default").GetLogs("no-such-pod", &corev1.PodLogOptions{}).Stream(context.Background()); err == nil || SplitStreamsRefused(err) {
		t.Fatalf("a log request of a missing pod is no refusal of the option: %v", err)
	}
}

// A container the kubelet could not configure because its secret cache
// lagged (CI saw it once, on a loaded node) gets a pull's patience; one
// whose secret is missing fails the wait at once.
func TestSecretCacheLagIsPatient(t *testing.T) {
	f := pullFailures{}
	lag := &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: "failed to sync secret cache: timed out waiting for the condition"}
	for range 2 { // first seen, then seen again
		if f.hopeless("web-1/web", lag) {
			t.Fatal("a lagging secret cache ended the wait at once")
		}
	}
	f["web-1/web"] = time.Now().Add(-pullPatience)
	if !f.hopeless("web-1/web", lag) {
		t.Error("a lagging secret cache was waited for beyond the patience")
	}
	missing := &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "db" not found`}
	if !f.hopeless("web-2/web", missing) {
		t.Error("a missing secret did not end the wait")
	}
}
