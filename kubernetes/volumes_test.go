package kubernetes

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
