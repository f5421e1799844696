package kubernetes

import (
	"context"
	"errors"
	"slices"
	"strings"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
)

// StorageClasses. A claim of a class the cluster does not have never
// binds: its pods stay Pending until the rollout gives up on them as
// Unschedulable (90 s later), with the scheduler's words about unbound
// claims, not the class's name. So the class is checked when it is set
// (clusters:add --storage-class, clusters:set … storage-class: Check) and
// again before a release is applied (checkStorageClasses: a class may go
// after it was set, and a claim keeps the class it was made with), and a
// missing one fails at once, naming the classes the cluster has.

// annotationDefaultClass marks the cluster's default StorageClass.
const annotationDefaultClass = "storageclass.kubernetes.io/is-default-class"

// storageClass finds the cluster's class of that name; the classes it has
// come with a missing one (an EINVALID error), to be named to the user.
func (c *Client) storageClass(ctx context.Context, name string) (*storagev1.StorageClass, error) {
	list, err := c.Typed.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i], nil
		}
	}
	return nil, &missingClass{name: name, have: classNames(list.Items)}
}

// missingClass is a StorageClass the cluster does not have.
type missingClass struct {
	name string
	have string // the classes it has, for the user
}

func (e *missingClass) Error() string { return "no StorageClass " + e.name }

// classNames names the classes for the user: "fast, local-path (the
// default)", or "none".
func classNames(list []storagev1.StorageClass) string {
	var names []string
	for _, sc := range list {
		n := sc.Name
		if sc.Annotations[annotationDefaultClass] == "true" {
			n += " (the default)"
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// CheckStorageClass fails at once (EINVALID) when the cluster has no
// StorageClass name, or skiff may not read its classes, saying what to do.
func (c *Client) CheckStorageClass(ctx context.Context, cluster, name string) error {
	_, err := c.storageClass(ctx, name)
	var missing *missingClass
	switch {
	case err == nil:
		return nil
	case errors.As(err, &missing):
		return skiff.Errorf(skiff.EINVALID, "cluster %s has no StorageClass %s; its classes: %s (`kubectl get storageclass` lists them): name one of those, or leave the class out for the cluster's default",
			cluster, name, missing.have)
	case apierrors.IsForbidden(err):
		return skiff.Errorf(skiff.EINVALID, "skiff may not list cluster %s's StorageClasses, so it cannot check class %s: grant it `get, list storageclasses.storage.k8s.io` cluster-wide (the ClusterRole of `skiff clusters:rbac` has them; a RoleBinding in a namespace does not reach the cluster's classes), or leave the class out for the cluster's default",
			cluster, name)
	}
	return skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s does not answer about its StorageClasses: %v", cluster, err)
}

// checkStorageClasses fails at once, before anything of m is applied, when
// a claim of m would be (or is, and is not bound yet) of a StorageClass the
// cluster does not have. A claim of the default class is checkClaims'
// (after admission has given it the class). Where skiff may not list the
// classes (a cluster added with --namespace whose admin granted no more
// than the namespace), nothing is checked: the rollout's Unschedulable
// timeout remains.
func (s *Scheduler) checkStorageClasses(ctx context.Context, m *Manifest) error {
	for _, want := range m.Claims {
		class, made := "", false
		got, err := s.cfg.Client.Typed.CoreV1().PersistentVolumeClaims(want.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case err == nil && got.Spec.VolumeName != "":
			continue // bound: its class did its work
		case err == nil:
			made = true
			if got.Spec.StorageClassName != nil {
				class = *got.Spec.StorageClassName
			}
		case IsNotFound(err):
			if want.Spec.StorageClassName != nil {
				class = *want.Spec.StorageClassName
			}
		default:
			return applyError(err)
		}
		if class == "" {
			continue
		}
		_, err = s.cfg.Client.storageClass(ctx, class)
		var missing *missingClass
		switch {
		case err == nil:
		case errors.As(err, &missing):
			vol := s.volumeName(ctx, want.Labels[LabelVolume])
			if made {
				return skiff.Errorf(skiff.EUNAVAILABLE, "the claim of storage %s on cluster %s is of StorageClass %s, which the cluster does not have (any more); its classes: %s. A claim keeps its class: the cluster's admin makes class %s again, or storage:unmount and storage:destroy %s (its claim never bound, so it holds no data) and mount a new volume",
					vol, s.cfg.Name, class, missing.have, class, vol)
			}
			return skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s has no StorageClass %s, which the claim of storage %s would be made of; its classes: %s. An admin names one of those (clusters:set %s storage-class CLASS), or sets the cluster's default back (clusters:set %s storage-class)",
				s.cfg.Name, class, vol, missing.have, s.cfg.Name, s.cfg.Name)
		case apierrors.IsForbidden(err):
			s.cfg.Log.Debug("kubernetes: StorageClasses not readable; not checked", "cluster", s.cfg.Name, "class", class)
			return nil
		default:
			return applyError(err)
		}
	}
	return nil
}

// volumeName is the name of skiff's volume with the id, or the id.
func (s *Scheduler) volumeName(ctx context.Context, id string) string {
	if s.cfg.Volume != nil {
		if v, err := s.cfg.Volume(ctx, id); err == nil && v.Name != "" {
			return v.Name
		}
	}
	return id
}
