package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiffhq/skiff"
)

// Growing a volume on a cluster (storage:resize). Its claim grows by a
// larger request, which the cluster takes only of a bound claim whose
// StorageClass allows volume expansion (admission refuses the rest, in
// words that do not say which); the volume then grows when the class's
// resizer does it, and its file system when the kubelet does, which the
// claim's status.capacity reports. So GrowVolume checks every claim first
// and changes none unless all can grow, asks them to, and waits a while
// for the cluster to do it: done, or what it still waits on.

// growWait is how long GrowVolume waits for the cluster to grow a claim.
var growWait = 30 * time.Second

// GrowVolume grows the claims of the volume on this cluster to size bytes.
// A claim that cannot grow (not bound yet, a class that does not allow
// volume expansion or that skiff may not read) is EINVALID, before any is
// changed. Once the cluster took the larger request, a claim it has not
// grown within growWait is reported in pending (what it waits on), with a
// nil error: the request stands, and the cluster grows it later. No claim
// of the volume here, or claims whose volumes hold size already (a
// PersistentVolume larger than the request): nothing to do.
func (s *Scheduler) GrowVolume(ctx context.Context, volumeID string, size int64) (pending string, err error) {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelVolume: volumeID}).String()
	list, err := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(s.cfg.Where.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return "", skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s does not answer about the claims of storage %s: %v; try again when it does", s.cfg.Name, s.volumeName(ctx, volumeID), err)
	}
	want := resource.NewQuantity(size, resource.BinarySI)
	var grow []corev1.PersistentVolumeClaim
	for _, c := range list.Items {
		if c.Spec.Resources.Requests.Storage().Cmp(*want) >= 0 {
			continue // asks for as much already
		}
		if got, ok := c.Status.Capacity[corev1.ResourceStorage]; ok && got.Cmp(*want) >= 0 {
			continue // bound to a volume that holds as much already
		}
		if err := s.canGrow(ctx, &c); err != nil {
			return "", err
		}
		grow = append(grow, c)
	}
	patch := fmt.Appendf(nil, `{"spec":{"resources":{"requests":{"storage":%q}}}}`, want.String())
	for _, c := range grow {
		_, err := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(c.Namespace).Patch(ctx, c.Name, types.MergePatchType, patch,
			metav1.PatchOptions{FieldManager: FieldManager})
		if err != nil {
			return "", skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s did not take a larger request for the claim of storage %s: %v", s.cfg.Name, s.volumeName(ctx, volumeID), err)
		}
	}
	var waiting []string
	for _, c := range grow {
		if why := s.waitGrown(ctx, c.Namespace, c.Name, *want); why != "" {
			waiting = append(waiting, why)
		}
	}
	return strings.Join(waiting, "; "), nil
}

// canGrow tells why the cluster would not grow claim c, or nil.
func (s *Scheduler) canGrow(ctx context.Context, c *corev1.PersistentVolumeClaim) error {
	vol := s.volumeName(ctx, c.Labels[LabelVolume])
	if c.Status.Phase != corev1.ClaimBound {
		return skiff.Errorf(skiff.EINVALID, "the claim of storage %s on cluster %s is not bound to a volume yet (it binds when a pod first mounts it), and a claim grows only once bound: deploy the app that mounts it, then storage:resize again",
			vol, s.cfg.Name)
	}
	class := ""
	if c.Spec.StorageClassName != nil {
		class = *c.Spec.StorageClassName
	}
	if class == "" {
		return skiff.Errorf(skiff.EINVALID, "the claim of storage %s on cluster %s has no StorageClass, and only a claim of a class that allows volume expansion grows: it stays at %s; make a larger volume and copy the data",
			vol, s.cfg.Name, c.Status.Capacity.Storage())
	}
	sc, err := s.cfg.Client.storageClass(ctx, class)
	var missing *missingClass
	switch {
	case errors.As(err, &missing):
		return skiff.Errorf(skiff.EINVALID, "the claim of storage %s on cluster %s is of StorageClass %s, which the cluster no longer has, so nothing can grow it; its classes: %s",
			vol, s.cfg.Name, class, missing.have)
	case apierrors.IsForbidden(err):
		return skiff.Errorf(skiff.EINVALID, "skiff may not read StorageClass %s of cluster %s, so it cannot tell whether the claim of storage %s can grow: grant it `get, list storageclasses.storage.k8s.io` cluster-wide (the ClusterRole of `skiff clusters:rbac` has them)",
			class, s.cfg.Name, vol)
	case err != nil:
		return skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s does not answer about StorageClass %s: %v", s.cfg.Name, class, err)
	case sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion:
		return skiff.Errorf(skiff.EINVALID, "StorageClass %s of cluster %s does not allow volume expansion, so the claim of storage %s stays at %s: the cluster's admin sets allowVolumeExpansion: true on the class (where its provisioner can grow volumes), or make a larger volume and copy the data",
			class, s.cfg.Name, vol, c.Status.Capacity.Storage())
	}
	return nil
}

// waitGrown waits up to growWait for the claim's capacity to reach want;
// "" once it has, else what the cluster still waits on.
func (s *Scheduler) waitGrown(ctx context.Context, ns, name string, want resource.Quantity) string {
	ctx, cancel := context.WithTimeout(ctx, growWait)
	defer cancel()
	pvcs := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(ns)
	var last *corev1.PersistentVolumeClaim
	for {
		c, err := pvcs.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = c
			if got, ok := c.Status.Capacity[corev1.ResourceStorage]; ok && got.Cmp(want) >= 0 {
				return ""
			}
		}
		select {
		case <-ctx.Done():
			return s.growingText(context.WithoutCancel(ctx), ns, name, want, last)
		case <-time.After(time.Second):
		}
	}
}

// growingText says where the growth of a claim is.
func (s *Scheduler) growingText(ctx context.Context, ns, name string, want resource.Quantity, c *corev1.PersistentVolumeClaim) string {
	vol, now := name, "?"
	if c != nil {
		vol = s.volumeName(ctx, c.Labels[LabelVolume])
		if got, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
			now = got.String()
		}
	}
	why := ""
	if c != nil {
		for _, cond := range c.Status.Conditions {
			switch cond.Type {
			case corev1.PersistentVolumeClaimFileSystemResizePending:
				why = "the volume is grown; its file system grows when a pod mounts it again (ps:restart)"
			case corev1.PersistentVolumeClaimResizing:
				why = "the cluster is growing the volume"
			}
		}
	}
	if why == "" { // the cluster's last word about the claim
		evs, err := s.cfg.Client.Typed.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=PersistentVolumeClaim,involvedObject.name=" + name})
		if err == nil && len(evs.Items) > 0 {
			e := evs.Items[0]
			for _, x := range evs.Items[1:] {
				if eventTime(x).After(eventTime(e)) {
					e = x
				}
			}
			why = e.Reason + ": " + strings.TrimSpace(e.Message)
		}
	}
	if why == "" {
		why = "the cluster has not said why"
	}
	return fmt.Sprintf("cluster %s took the request to grow the claim of storage %s to %s and has it at %s after %s (%s); it grows when the cluster's volume resizer does it (`kubectl describe pvc %s -n %s` follows it)",
		s.cfg.Name, vol, want.String(), now, growWait, why, name, ns)
}
