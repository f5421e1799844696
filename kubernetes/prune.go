package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// AppSelector selects every object skiff made for the app.
func AppSelector(appID string) string {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelAppID: appID}).String()
}

// owned are the namespaced kinds skiff makes for an app, in the order they
// are removed (what makes pods first).
var owned = []schema.GroupVersionResource{
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "persistentvolumeclaims"}, // never pruned: only with the app
}

// Prune deletes the app's objects in m's namespace that m no longer names (a
// process type removed, a budget below 2 replicas, the pull secret of a
// registry no longer used, a cron job gone), and the config Secrets of
// releases other than m's and those in keep. Pods and Jobs are left to
// their owners (and to RemoveApp), and so are the environments of the
// instances the Scheduler started. It deletes only objects with skiff's
// labels for the app.
func (c *Client) Prune(ctx context.Context, r *Release, m *Manifest, keep ...int) error {
	want := map[string]bool{}
	for _, o := range m.Objects() {
		want[o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName()] = true
	}
	kinds := map[string]string{"deployments": "Deployment", "poddisruptionbudgets": "PodDisruptionBudget",
		"services": "Service", "secrets": "Secret", "serviceaccounts": "ServiceAccount", "cronjobs": "CronJob", "ingresses": "Ingress"}
	keepVersion := map[string]bool{strconv.Itoa(r.Version): true}
	for _, v := range keep {
		keepVersion[strconv.Itoa(v)] = true
	}
	var errs []error
	for _, gvr := range owned {
		kind, ok := kinds[gvr.Resource]
		if !ok {
			continue
		}
		list, err := c.dynamic.Resource(gvr).Namespace(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: AppSelector(r.AppID)})
		if ingressesForbidden(gvr.Resource, err) && r.Ingress == nil {
			continue
		}
		if err != nil {
			return fmt.Errorf("prune %s: %w", gvr.Resource, err)
		}
		for _, item := range list.Items {
			if want[kind+"/"+item.GetName()] {
				continue
			}
			if _, instance := item.GetLabels()[LabelIndex]; instance {
				continue // an instance's environment: its pod owns it
			}
			if v, isConfig := item.GetLabels()[LabelRelease]; kind == "Secret" && isConfig && keepVersion[v] {
				continue
			}
			if err := c.delete(ctx, gvr, r.Namespace, item.GetName(), item.GetUID()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// delete removes one object, only if it is still the one that was listed
// (its UID), letting what it owns go in the background.
func (c *Client) delete(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, uid types.UID) error {
	policy := metav1.DeletePropagationBackground
	err := c.dynamic.Resource(gvr).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete %s %s/%s: %w", gvr.Resource, ns, name, err)
	}
	return nil
}

// RemoveApp deletes everything skiff made for the app in namespace ns: the
// namespace itself when it is the app's own (it carries the app's labels),
// else each of the app's objects in it. Nothing without the app's labels is
// deleted. Removing an app that has nothing on the cluster is no error.
func (c *Client) RemoveApp(ctx context.Context, ns, appID string, shared bool) error {
	if !shared {
		got, err := c.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case IsNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("remove app: %w", err)
		}
		if l := got.Labels; l[LabelManagedBy] == ManagedBy && l[LabelAppID] == appID {
			uid := got.UID
			policy := metav1.DeletePropagationBackground
			err := c.Typed.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
			if err != nil && !IsNotFound(err) {
				return fmt.Errorf("remove app: delete namespace %s: %w", ns, err)
			}
			return nil
		}
		// A namespace skiff did not make: remove the app's objects only.
	}
	var errs []error
	for _, gvr := range owned {
		list, err := c.dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: AppSelector(appID)})
		if IsNotFound(err) || ingressesForbidden(gvr.Resource, err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove app: list %s: %w", gvr.Resource, err))
			continue
		}
		for _, item := range list.Items {
			if err := c.delete(ctx, gvr, ns, item.GetName(), item.GetUID()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
