package kubernetes

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/k8stestbed"
)

// storage:resize of a volume on a real cluster (its controller-manager
// binds the claims and runs the expand controller): a claim of a class
// that does not allow volume expansion, or not bound yet, is refused with
// nothing changed; one of a class that does gets the larger request, and
// GrowVolume says what it waits on until the cluster's resizer (here the
// test's, as a CSI driver's would: this node's local volumes have none)
// grows it, and reports it done once it has.
func TestGrowVolume(t *testing.T) {
	nb := oneNode(t)
	ctx := context.Background()
	admin := nb.client
	yes, immediate, late := true, storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer
	classes := []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "grow-fixed"}, Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &immediate},
		{ObjectMeta: metav1.ObjectMeta{Name: "grow-yes"}, Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &immediate, AllowVolumeExpansion: &yes},
		{ObjectMeta: metav1.ObjectMeta{Name: "grow-late"}, Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &late, AllowVolumeExpansion: &yes},
	}
	// grow-fixed's volume is larger than the claims ask for.
	capacity := map[string]resource.Quantity{"grow-fixed": resource.MustParse("5Gi"), "grow-yes": resource.MustParse("1Gi"), "grow-late": resource.MustParse("1Gi")}
	for _, sc := range classes {
		if _, err := admin.Typed.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pv := k8stestbed.LocalPV(sc.Name+"-1", sc.Name, capacity[sc.Name], t.TempDir(), "tb-node1")
		if _, err := admin.Typed.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = admin.Typed.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
			_ = admin.Typed.StorageV1().StorageClasses().Delete(ctx, sc.Name, metav1.DeleteOptions{})
		})
	}
	names := map[string]string{"vol-00000000000000f1": "fixed", "vol-00000000000000f2": "growing", "vol-00000000000000f3": "unbound"}
	s := &Scheduler{cfg: SchedulerConfig{Name: "tb", Client: admin, Log: slog.New(slog.DiscardHandler),
		Volume: func(_ context.Context, id string) (*skiff.Volume, error) {
			return &skiff.Volume{ID: id, Name: names[id]}, nil
		}}}
	claim := func(id, class string) {
		r := sample("skiff-grow", "a1b2c3d4e5f6071b", "grow", 1)
		r.Processes[0].Replicas, r.Processes[1].Replicas, r.Cron = 0, 0, nil // no pod: none binds the late claim
		r.Processes[0].Mounts = []Mount{{Volume: id, Path: "/app/storage"}}
		r.StorageClass = class
		m := applyRelease(t, admin, r)
		if err := admin.EnsureClaims(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	claim("vol-00000000000000f1", "grow-fixed")
	claim("vol-00000000000000f2", "grow-yes")
	claim("vol-00000000000000f3", "grow-late")
	t.Cleanup(func() { _ = admin.RemoveApp(ctx, "skiff-grow", "a1b2c3d4e5f6071b", false) })
	pvcs := admin.Typed.CoreV1().PersistentVolumeClaims("skiff-grow")
	for _, id := range []string{"vol-00000000000000f1", "vol-00000000000000f2"} {
		deadline := time.Now().Add(time.Minute)
		for {
			c, err := pvcs.Get(ctx, id, metav1.GetOptions{})
			if err == nil && c.Status.Phase == corev1.ClaimBound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("claim %s not bound: %+v %v", id, c, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	request := func(id string) string {
		c, err := pvcs.Get(ctx, id, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Spec.Resources.Requests.Storage().String()
	}

	_, err := s.GrowVolume(ctx, "vol-00000000000000f1", 8<<30)
	if skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "StorageClass grow-fixed of cluster tb does not allow volume expansion, so the claim of storage fixed stays at 5Gi") {
		t.Fatalf("a claim of a class without expansion: %v", err)
	}
	// Within the volume it is bound to: nothing to grow.
	if pending, err := s.GrowVolume(ctx, "vol-00000000000000f1", 2<<30); err != nil || pending != "" {
		t.Fatalf("a claim whose volume holds the size already: %q %v", pending, err)
	}
	_, err = s.GrowVolume(ctx, "vol-00000000000000f3", 2<<30)
	if skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "storage unbound on cluster tb is not bound") {
		t.Fatalf("a claim not bound yet: %v", err)
	}
	if request("vol-00000000000000f1") != "1Gi" || request("vol-00000000000000f3") != "1Gi" {
		t.Fatalf("a refused growth changed a claim: %s %s", request("vol-00000000000000f1"), request("vol-00000000000000f3"))
	}

	defer func(w time.Duration) { growWait = w }(growWait)
	growWait = 5 * time.Second
	pending, err := s.GrowVolume(ctx, "vol-00000000000000f2", 2<<30)
	if err != nil || !strings.Contains(pending, "grow the claim of storage growing to 2Gi and has it at 1Gi") || !strings.Contains(pending, "external controller") {
		t.Fatalf("a claim the cluster has no resizer for: %q %v", pending, err)
	}
	if request("vol-00000000000000f2") != "2Gi" {
		t.Fatalf("the claim's request after GrowVolume: %s", request("vol-00000000000000f2"))
	}

	// The cluster's resizer: the volume grows, then the claim's capacity.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			c, err := pvcs.Get(ctx, "vol-00000000000000f2", metav1.GetOptions{})
			if err != nil || c.Spec.Resources.Requests.Storage().Cmp(*c.Status.Capacity.Storage()) <= 0 {
				continue
			}
			pv, err := admin.Typed.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
			if err != nil {
				continue
			}
			pv.Spec.Capacity[corev1.ResourceStorage] = *c.Spec.Resources.Requests.Storage()
			if _, err := admin.Typed.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
				continue
			}
			c.Status.Capacity[corev1.ResourceStorage] = *c.Spec.Resources.Requests.Storage()
			_, _ = pvcs.UpdateStatus(ctx, c, metav1.UpdateOptions{})
		}
	}()
	defer func() { close(stop); <-done }()
	pending, err = s.GrowVolume(ctx, "vol-00000000000000f2", 3<<30)
	if err != nil || pending != "" {
		t.Fatalf("a claim the cluster grows: %q %v", pending, err)
	}
	if c, _ := pvcs.Get(ctx, "vol-00000000000000f2", metav1.GetOptions{}); c.Status.Capacity.Storage().String() != "3Gi" {
		t.Fatalf("the claim's capacity: %v", c.Status.Capacity)
	}
	// No claim of the volume here: nothing to do.
	if pending, err := s.GrowVolume(ctx, "vol-00000000000000ff", 3<<30); err != nil || pending != "" {
		t.Fatalf("a volume without a claim: %q %v", pending, err)
	}
}
