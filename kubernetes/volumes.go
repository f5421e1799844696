package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffhq/skiff"
)

// Volumes on a cluster. An app's volume (storage:mount) is a
// PersistentVolumeClaim in the app's namespace, named by the volume's id
// (vol-…), of the cluster's default StorageClass, ReadWriteOnce: what every
// cluster's default class serves (a cloud's block disks, k3s's
// local-path), where ReadWriteMany needs a file system class (NFS, CephFS)
// that few clusters have. ReadWriteOnce is one node's, so:
//
//   - a process type that mounts a volume runs one pod (a second would
//     write the same files from another node, or never start: the claim
//     is attached to one node): Rollout refuses more, with a message;
//   - every pod that mounts the claim (the web's, the release phase's
//     Job, run, cron) goes to the node of the pods that have it already (a
//     required pod affinity on the claim's label), so a rollout's new pod
//     and the old one share it on one node instead of waiting on an
//     attach that cannot come;
//   - the pods run with fsGroup = the image's group, so the claim's files
//     are the app's to write.
//
// The claim is made once and never changed by a deploy: it survives every
// release, storage:unmount included, and goes only with storage:destroy
// (RemoveVolume) or with the app (apps:destroy removes its namespace, or
// its objects in a shared one). scheduler:set refuses to move an app that
// mounts storage either way: the data would not follow.

// LabelVolume carries a claim's volume id; LabelMounts is the prefix of
// the label a pod has for each claim it mounts (the pod affinity's key).
const (
	LabelVolume = "skiff.dev/volume"
	labelMounts = "mounts.skiff.dev/"
)

// ClaimSize is what a claim requests for a volume of no known size.
var ClaimSize = resource.MustParse("1Gi")

// Mount is a volume of the app mounted into a process at Path.
type Mount struct {
	Volume   string // the volume's id: the claim's name
	Path     string
	ReadOnly bool
	Size     int64 // the volume's size, in bytes; 0: ClaimSize
}

// claimName is the claim of volume id in r's namespace.
func (r *Release) claimName(id string) string { return r.Name(id) }

// claims are the PersistentVolumeClaims of every volume r's processes,
// one-offs and cron jobs mount.
func claims(r *Release, meta func(string, map[string]string) metav1.ObjectMeta) []*corev1.PersistentVolumeClaim {
	var ids []string
	size := map[string]int64{}
	for _, m := range r.allMounts() {
		if !slices.Contains(ids, m.Volume) {
			ids = append(ids, m.Volume)
		}
		size[m.Volume] = max(size[m.Volume], m.Size)
	}
	slices.Sort(ids)
	var class *string
	if r.StorageClass != "" {
		class = &r.StorageClass
	}
	out := make([]*corev1.PersistentVolumeClaim, 0, len(ids))
	for _, id := range ids {
		req := ClaimSize
		if size[id] > 0 {
			req = *resource.NewQuantity(size[id], resource.BinarySI)
		}
		out = append(out, &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: meta(r.claimName(id), map[string]string{LabelVolume: id}),
			Spec: corev1.PersistentVolumeClaimSpec{
				StorageClassName: class,
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: req}},
			},
		})
	}
	return out
}

func (r *Release) allMounts() []Mount {
	var all []Mount
	for _, p := range r.Processes {
		all = append(all, p.Mounts...)
	}
	all = append(all, r.OneOffMounts...)
	for _, j := range r.Cron {
		all = append(all, j.Mounts...)
	}
	return all
}

// validMounts checks mounts as the cluster would, before anything is
// applied.
func validMounts(mounts []Mount) error {
	for _, m := range mounts {
		if !strings.HasPrefix(m.Volume, "vol-") || len(m.Volume) > 40 {
			return fmt.Errorf("render: volume id %q", m.Volume)
		}
		if _, err := skiff.ParseMountPath(m.Path); err != nil {
			return err
		}
	}
	return nil
}

// mountLabels are the labels of a pod that mounts the claims.
func mountLabels(mounts []Mount) map[string]string {
	if len(mounts) == 0 {
		return nil
	}
	lbl := map[string]string{}
	for _, m := range mounts {
		lbl[labelMounts+m.Volume] = "true"
	}
	return lbl
}

// mountVolumes mounts the claims into the pod spec, keeps the pod on the
// node of the claims' other pods, and gives the files to the image's group.
func mountVolumes(r *Release, spec *corev1.PodSpec, mounts []Mount) {
	if len(mounts) == 0 {
		return
	}
	c := &spec.Containers[0]
	var terms []corev1.PodAffinityTerm
	seen := map[string]bool{}
	for i, m := range mounts {
		name := fmt.Sprintf("storage-%d", i)
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: r.claimName(m.Volume)}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: m.Path, ReadOnly: m.ReadOnly})
		if seen[m.Volume] {
			continue
		}
		seen[m.Volume] = true
		terms = append(terms, corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: labelMounts + m.Volume, Operator: metav1.LabelSelectorOpExists}}},
			TopologyKey:   corev1.LabelHostname,
		})
	}
	spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}}
	if r.GID != nil {
		spec.SecurityContext.FSGroup = r.GID
	}
}

// RemoveVolume deletes the claims of a volume that no app mounts any more
// (storage:destroy), in every namespace of skiff's. Idempotent.
func (s *Scheduler) RemoveVolume(ctx context.Context, volumeID string) error {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelVolume: volumeID}).String()
	pvcs := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(s.cfg.Where.Namespace)
	list, err := pvcs.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return fmt.Errorf("list the claims of %s on cluster %s: %w", volumeID, s.cfg.Name, err)
	}
	for _, c := range list.Items {
		if err := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(c.Namespace).Delete(ctx, c.Name, metav1.DeleteOptions{}); err != nil && !IsNotFound(err) {
			return fmt.Errorf("delete claim %s/%s on cluster %s: %w", c.Namespace, c.Name, s.cfg.Name, err)
		}
	}
	return nil
}

// mounts are a spec's mounts on this cluster, with their volumes' sizes;
// a volume skiff does not have is EINVALID.
func (s *Scheduler) mounts(ctx context.Context, ms []skiff.Mount) ([]Mount, error) {
	out := make([]Mount, 0, len(ms))
	for _, m := range ms {
		km := Mount{Volume: m.Volume, Path: m.Path, ReadOnly: m.ReadOnly}
		if s.cfg.Volume != nil {
			v, err := s.cfg.Volume(ctx, m.Volume)
			if skiff.ErrorCode(err) == skiff.ENOTFOUND {
				return nil, skiff.Errorf(skiff.EINVALID, "there is no volume %s to mount at %s", m.Volume, m.Path)
			} else if err != nil {
				return nil, err
			}
			km.Size = v.SizeBytes
		}
		out = append(out, km)
	}
	return out, nil
}

// VolumeClaims lists, by volume id, the ids of the apps that hold a claim
// of it on this cluster.
func (s *Scheduler) VolumeClaims(ctx context.Context) (map[string][]string, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy}).String() + "," + LabelVolume
	list, err := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(s.cfg.Where.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list the claims on cluster %s: %w", s.cfg.Name, err)
	}
	out := map[string][]string{}
	for _, c := range list.Items {
		id, app := c.Labels[LabelVolume], c.Labels[LabelAppID]
		if !slices.Contains(out[id], app) {
			out[id] = append(out[id], app)
		}
	}
	return out, nil
}

// EnsureClaims makes the claims of m that do not exist yet; one that does
// is left as it is (a claim's class and mode cannot change, and its size
// only grows): a volume keeps its claim, and its data, across releases and
// changes of the cluster's settings.
func (c *Client) EnsureClaims(ctx context.Context, m *Manifest) error {
	for _, claim := range m.Claims {
		pvcs := c.Typed.CoreV1().PersistentVolumeClaims(claim.Namespace)
		_, err := pvcs.Get(ctx, claim.Name, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !IsNotFound(err) {
			return fmt.Errorf("the claim %s: %w", claim.Name, err)
		}
		if _, err := pvcs.Create(ctx, claim, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("make the claim %s: %w", claim.Name, err)
		}
	}
	return nil
}

// checkClaims fails at once, rather than after the pods wait for ever, when
// a claim of m can never bind: it has no StorageClass (the cluster has no
// default one, which its admission would have set) and is not bound.
func (s *Scheduler) checkClaims(ctx context.Context, m *Manifest) error {
	for _, c := range m.Claims {
		got, err := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("the claim %s: %w", c.Name, err)
		}
		if (got.Spec.StorageClassName == nil || *got.Spec.StorageClassName == "") && got.Status.Phase != corev1.ClaimBound {
			return skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s has no default StorageClass, so nothing provisions claim %s (the app's storage): the cluster's admin marks a class as the default (annotation storageclass.kubernetes.io/is-default-class=true); `kubectl get storageclass` lists them",
				s.cfg.Name, got.Name)
		}
	}
	return nil
}
