package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
)

// Rollout implements skiff.RolloutScheduler: it renders f (a Deployment per
// process type, the web Service, budgets, a CronJob per cron job, the
// release's config Secret), applies it server-side (the CronJobs once the
// rollout is done: Manifest.Staged), follows the rollout
// until every Deployment's new pods are ready and no old one is left, and
// then deletes what the release no longer has. A failure says why, in the
// cluster's words.
func (s *Scheduler) Rollout(ctx context.Context, f *skiff.FormationSpec, progress func(string)) error {
	if err := s.PushImage(ctx, &skiff.InstanceSpec{AppID: f.AppID, AppName: f.AppName, Release: f.Release, Image: f.Image}, progress); err != nil {
		return err
	}
	r, err := s.formationRelease(ctx, f)
	if err != nil {
		return err
	}
	m, err := Render(r)
	if err != nil {
		return skiff.Errorf(skiff.EINVALID, "%v", err)
	}
	if err := s.waitNamespace(ctx, r.Namespace, progress); err != nil {
		return err
	}
	if err := s.checkStorageClasses(ctx, m); err != nil {
		return err
	}
	first, after := m.Staged()
	if err := s.cfg.Client.ApplyAll(ctx, first); err != nil {
		return applyError(err)
	}
	if err := s.cfg.Client.EnsureClaims(ctx, m); err != nil {
		return applyError(err)
	}
	if err := s.checkClaims(ctx, m); err != nil {
		return err
	}
	if err := s.cfg.Client.WaitRollout(ctx, r, m, progress); err != nil {
		var re *RolloutError
		if errors.As(err, &re) {
			msg := re.Error()
			if (re.Reason == "ErrImagePull" || re.Reason == "ImagePullBackOff") && r.Registry != nil {
				if s.cfg.Push != nil {
					msg += fmt.Sprintf("\nThe cluster's nodes pull the app's images from the registry %s with the credentials of clusters:set … registry: they must reach it and trust its certificate", r.Registry.Server)
				} else {
					msg += fmt.Sprintf("\nThe cluster's nodes pull the app's images from skiff's registry at %s: they must reach that address and trust its certificate (skiff serve --registry-host, --registry-cert)", r.Registry.Server)
				}
			}
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s", msg)
		}
		return err
	}
	if err := s.cfg.Client.ApplyAll(ctx, after); err != nil {
		return applyError(err)
	}
	if err := s.cfg.Client.Prune(ctx, r, m); err != nil {
		s.cfg.Log.Warn("kubernetes: prune", "app", f.AppName, "err", err)
	}
	return nil
}

// applyError is a refusal of the API server, for the user: its message
// says what the cluster did not take (a quota, an admission policy).
func applyError(err error) error {
	return skiff.Errorf(skiff.EUNAVAILABLE, "the cluster refused the release: %v", err)
}

// formationRelease is what f becomes on this cluster.
func (s *Scheduler) formationRelease(ctx context.Context, f *skiff.FormationSpec) (*Release, error) {
	for _, p := range f.Processes {
		if len(p.Mounts) > 0 && p.Quantity > 1 {
			return nil, skiff.Errorf(skiff.EINVALID, "%s mounts storage into %s, which would run %d pods: on cluster %s a volume is a ReadWriteOnce claim, which one node's pods only can use, so a process type that mounts one runs one pod there; scale %s to 1 (ps:scale %s %s=1), or storage:unmount it",
				f.AppName, p.Type, p.Quantity, s.cfg.Name, p.Type, f.AppName, p.Type)
		}
	}
	base := &skiff.InstanceSpec{AppID: f.AppID, AppName: f.AppName, Release: f.Release, Image: f.Image}
	r := &Release{Namespace: s.Namespace(f.AppID), Shared: s.cfg.Where.Namespace != "", AppID: f.AppID, App: f.AppName, StorageClass: s.cfg.Where.StorageClass,
		Version: max(f.Release, 1), Config: f.Env,
		Check: Check{Path: f.Check.Path, Timeout: f.Check.Timeout, Deadline: f.Check.Deadline, WaitToRetire: f.DrainTimeout}}
	live := s.restartedAt(ctx, r)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for _, p := range f.Processes {
		spec := *base
		spec.ProcessType = p.Type
		img, err := s.cfg.Image(ctx, &spec)
		if err != nil {
			return nil, err
		}
		r.Image, r.UID, r.GID, r.Registry = img.Ref, img.UID, img.GID, img.Registry
		mounts, err := s.mounts(ctx, p.Mounts)
		if err != nil {
			return nil, err
		}
		restarted := live[p.Type]
		if slices.Contains(f.Restart, "*") || slices.Contains(f.Restart, p.Type) {
			restarted = now
		}
		r.Processes = append(r.Processes, Process{Type: p.Type, Command: img.Command, Args: img.Args, Replicas: p.Quantity, Limits: p.Limits, RestartedAt: restarted, Mounts: mounts})
	}
	if r.Image == "" { // no process types: the image for the cron jobs
		img, err := s.cfg.Image(ctx, base)
		if err != nil {
			return nil, err
		}
		r.Image, r.UID, r.GID, r.Registry = img.Ref, img.UID, img.GID, img.Registry
	}
	if s.cfg.Where.IngressClass != "" {
		r.Ingress = &Ingress{Class: s.cfg.Where.IngressClass, Hosts: f.Hosts}
	}
	zone := "UTC"
	if tz := f.Env["TZ"]; tz != "" {
		if _, err := time.LoadLocation(tz); err == nil {
			zone = tz
		}
	}
	cronMounts, err := s.mounts(ctx, f.CronMounts)
	if err != nil {
		return nil, err
	}
	for _, j := range f.Cron {
		spec := *base
		spec.ProcessType, spec.Command, spec.OneOff = skiff.OneOffCron, []string{j.Command}, true
		img, err := s.cfg.Image(ctx, &spec)
		if err != nil {
			return nil, err
		}
		r.Cron = append(r.Cron, CronJob{ID: j.ID, Schedule: j.Schedule, TimeZone: zone, Command: img.Command, Args: img.Args,
			Suspend: slices.Contains(f.CronSuspended, j.ID), Mounts: cronMounts})
	}
	return r, nil
}

// restartedAt reads the restart marks of the app's Deployments, which a
// Rollout keeps unless it restarts them.
func (s *Scheduler) restartedAt(ctx context.Context, r *Release) map[string]string {
	out := map[string]string{}
	list, err := s.cfg.Client.Typed.AppsV1().Deployments(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: AppSelector(r.AppID)})
	if err != nil {
		return out
	}
	for _, d := range list.Items {
		if v := d.Spec.Template.Annotations[AnnotationRestartedAt]; v != "" {
			out[d.Labels[LabelProcess]] = v
		}
	}
	return out
}

// waitNamespace waits while the app's namespace is still being deleted
// (the app left the cluster a moment ago): nothing can be made in it
// until it is gone.
func (s *Scheduler) waitNamespace(ctx context.Context, ns string, progress func(string)) error {
	said := false
	for {
		got, err := s.cfg.Client.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if IsNotFound(err) || err == nil && got.Status.Phase != corev1.NamespaceTerminating {
			return nil
		}
		if err != nil && s.cfg.Where.Namespace != "" {
			return nil // a shared namespace skiff may not read as a whole
		}
		if !said && err == nil {
			progress(fmt.Sprintf("namespace %s is still being deleted (the app left the cluster a moment ago); waiting", ns))
			said = true
		}
		select {
		case <-ctx.Done():
			return skiff.Errorf(skiff.EUNAVAILABLE, "namespace %s was still being deleted: %v", ns, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// Evict implements skiff.RolloutScheduler: everything skiff made for the
// app goes (its namespace, or its objects in a shared one, pods first, with
// a short grace: its traffic has moved), its log stays.
func (s *Scheduler) Evict(ctx context.Context, appID string) error {
	pods, err := s.list(ctx, appID)
	if err != nil {
		return err
	}
	grace := int64(5)
	for _, p := range pods {
		err := s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		if err != nil && !IsNotFound(err) {
			return fmt.Errorf("remove the app's pods: %w", err)
		}
		s.forget(s.id(p.Namespace, p.Name))
	}
	return s.cfg.Client.RemoveApp(ctx, s.Namespace(appID), appID, s.cfg.Where.Namespace != "")
}

// Backends implements skiff.RolloutScheduler: the ready endpoints of the
// app's web Service, as its EndpointSlices list them.
func (s *Scheduler) Backends(ctx context.Context, appID string) ([]string, error) {
	if s.RoutesTraffic() {
		return nil, nil // the cluster's ingress controller serves the app
	}
	sel := AppSelector(appID) + "," + LabelProcess + "=web"
	list, err := s.cfg.Client.Typed.DiscoveryV1().EndpointSlices(s.Namespace(appID)).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("the app's endpoints: %w", err)
	}
	var out []string
	for _, sl := range list.Items {
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil || *p.Name == "http") {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready || len(e.Addresses) == 0 {
				continue
			}
			out = append(out, fmt.Sprintf("%s:%d", e.Addresses[0], port))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

var _ skiff.RolloutScheduler = (*Scheduler)(nil)
