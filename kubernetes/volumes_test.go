package kubernetes

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
)

// A release whose processes mount volumes, applied as skiff (with exactly
// rbac.yaml's grants): one claim per volume, ReadWriteOnce, of the default
// class, kept by a second apply and by a prune, removed with the app; the
// pods mount it, share a node with its other pods, and own its files
// through their group.
func TestApplyClaims(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	skiffUser := userClient(t, "skiff")
	r := sample("skiff-vol", "a1b2c3d4e5f60719", "vol", 1)
	r.Processes[0].Replicas = 1
	r.Processes[0].Mounts = []Mount{{Volume: "vol-0123456789abcdef", Path: "/app/storage"}}
	r.Cron[0].Mounts = []Mount{{Volume: "vol-0123456789abcdef", Path: "/app/storage"}, {Volume: "vol-fedcba9876543210", Path: "/app/ro", ReadOnly: true}}
	r.StorageClass = "fast"
	m := applyRelease(t, skiffUser, r)
	if err := skiffUser.EnsureClaims(ctx, m); err != nil {
		t.Fatal(err)
	}
	// Again, with another class (clusters:set … storage-class): the claims
	// stay as they are.
	r.StorageClass = "other"
	m = applyRelease(t, skiffUser, r)
	if err := skiffUser.EnsureClaims(ctx, m); err != nil {
		t.Fatal(err)
	}
	claims, err := skiffUser.Typed.CoreV1().PersistentVolumeClaims("skiff-vol").List(ctx, metav1.ListOptions{LabelSelector: AppSelector(r.AppID)})
	if err != nil || len(claims.Items) != 2 {
		t.Fatalf("claims: %v %v", claims, err)
	}
	c := claims.Items[0]
	if c.Name != "vol-0123456789abcdef" || c.Labels[LabelVolume] != c.Name || c.Spec.AccessModes[0] != corev1.ReadWriteOnce ||
		c.Spec.Resources.Requests.Storage().Cmp(ClaimSize) != 0 || c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != "fast" {
		t.Fatalf("claim %+v", c)
	}
	if err := skiffUser.Prune(ctx, r, m); err != nil {
		t.Fatal(err)
	}
	web, err := skiffUser.Typed.AppsV1().Deployments("skiff-vol").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := web.Spec.Template.Spec
	if len(pod.Volumes) != 1 || pod.Volumes[0].PersistentVolumeClaim.ClaimName != "vol-0123456789abcdef" ||
		pod.Containers[0].VolumeMounts[0].MountPath != "/app/storage" || pod.SecurityContext.FSGroup == nil || *pod.SecurityContext.FSGroup != 1000 ||
		pod.Affinity == nil || len(pod.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 ||
		web.Spec.Template.Labels["mounts.skiff.dev/vol-0123456789abcdef"] != "true" {
		t.Fatalf("web's pods: %+v %v", pod, web.Spec.Template.Labels)
	}
	if _, err := skiffUser.Typed.CoreV1().PersistentVolumeClaims("skiff-vol").Get(ctx, c.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("a prune removed the claim: %v", err)
	}
	r.Processes[0].Mounts = nil
	r.Cron[0].Mounts = nil
	r.Version = 2
	m = applyRelease(t, skiffUser, r)
	if err := skiffUser.Prune(ctx, r, m); err != nil {
		t.Fatal(err)
	}
	if list, _ := skiffUser.Typed.CoreV1().PersistentVolumeClaims("skiff-vol").List(ctx, metav1.ListOptions{}); len(list.Items) != 2 {
		t.Fatalf("a release without the mounts removed a claim: %d left", len(list.Items))
	}
}

func TestRenderRefusesBadMounts(t *testing.T) {
	for _, m := range []Mount{{Volume: "../etc", Path: "/data"}, {Volume: "vol-0123456789abcdef", Path: "/proc/x"}, {Volume: "vol-0123456789abcdef", Path: "relative"}} {
		r := sample("skiff-x", "a1b2c3d4e5f60719", "x", 1)
		r.Processes[0].Mounts = []Mount{m}
		if _, err := Render(r); err == nil {
			t.Errorf("%+v rendered", m)
		}
	}
}

// A StorageClass the cluster does not have is named at once, with the
// classes it has: when it is set (CheckStorageClass, as clusters:add and
// clusters:set run it), and before a release whose claims would be made of
// it, or are of it and unbound, is applied.
func TestMissingStorageClass(t *testing.T) {
	controlPlane(t)
	ctx := context.Background()
	admin := clientFor(t, bed.AdminKubeconfig())
	for _, sc := range []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "tb-a", Annotations: map[string]string{annotationDefaultClass: "true"}}, Provisioner: "kubernetes.io/no-provisioner"},
		{ObjectMeta: metav1.ObjectMeta{Name: "tb-b"}, Provisioner: "kubernetes.io/no-provisioner"},
	} {
		if _, err := admin.Typed.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Typed.StorageV1().StorageClasses().Delete(ctx, sc.Name, metav1.DeleteOptions{}) })
	}
	skiffUser := userClient(t, "skiff")
	if err := skiffUser.CheckStorageClass(ctx, "tb", "tb-b"); err != nil {
		t.Fatalf("a class the cluster has: %v", err)
	}
	err := skiffUser.CheckStorageClass(ctx, "tb", "nosuch")
	if skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "cluster tb has no StorageClass nosuch") || !strings.Contains(err.Error(), "tb-a (the default), tb-b") {
		t.Fatalf("a class the cluster does not have: %v", err)
	}
	if err := userClient(t, "stranger").CheckStorageClass(ctx, "tb", "tb-b"); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "may not list") {
		t.Fatalf("a user who may not list the classes: %v", err)
	}

	s := &Scheduler{cfg: SchedulerConfig{Name: "tb", Client: skiffUser, Log: slog.New(slog.DiscardHandler),
		Volume: func(_ context.Context, id string) (*skiff.Volume, error) {
			return &skiff.Volume{ID: id, Name: "data"}, nil
		}}}
	r := sample("skiff-sc", "a1b2c3d4e5f6071a", "sc", 1)
	r.Processes[0].Replicas = 1
	r.Processes[0].Mounts = []Mount{{Volume: "vol-00000000000000aa", Path: "/app/storage"}}
	r.StorageClass = "nosuch"
	m, err := Render(r)
	if err != nil {
		t.Fatal(err)
	}
	err = s.checkStorageClasses(ctx, m)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "cluster tb has no StorageClass nosuch, which the claim of storage data would be made of") ||
		!strings.Contains(err.Error(), "tb-a (the default), tb-b") || !strings.Contains(err.Error(), "clusters:set tb storage-class CLASS") {
		t.Fatalf("a release whose claim would be of a class the cluster does not have: %v", err)
	}
	r.StorageClass = ""
	if m, _ = Render(r); s.checkStorageClasses(ctx, m) != nil {
		t.Fatalf("a claim of the default class: %v", s.checkStorageClasses(ctx, m))
	}
	// A claim made of a class that goes before it binds.
	r.StorageClass = "tb-gone"
	m = applyRelease(t, skiffUser, r)
	if err := skiffUser.EnsureClaims(ctx, m); err != nil {
		t.Fatal(err)
	}
	r.StorageClass = "tb-b" // the cluster's setting since: the claim keeps its class
	m, _ = Render(r)
	err = s.checkStorageClasses(ctx, m)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "the claim of storage data on cluster tb is of StorageClass tb-gone") ||
		!strings.Contains(err.Error(), "tb-a (the default), tb-b") {
		t.Fatalf("an unbound claim of a class the cluster does not have: %v", err)
	}
	if err := skiffUser.RemoveApp(ctx, r.Namespace, r.AppID, false); err != nil {
		t.Fatal(err)
	}
}
