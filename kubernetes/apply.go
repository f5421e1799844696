package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Object is a typed Kubernetes object skiff applies.
type Object interface {
	runtime.Object
	metav1.Object
}

// Client talks to one cluster as skiff.
type Client struct {
	Typed   k8s.Interface
	dynamic dynamic.Interface
	config  *rest.Config
}

// RESTConfig reads a kubeconfig (its current context).
func RESTConfig(kubeconfig []byte) (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "skiff"
	return cfg, nil
}

// NewClient connects to the cluster cfg names (nothing is sent yet).
func NewClient(cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	typed, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Typed: typed, dynamic: dyn, config: cfg}, nil
}

// resources maps the kinds skiff applies to their API resources: skiff
// applies a fixed set, so it needs no discovery.
var resources = map[schema.GroupVersionKind]struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}{
	{Version: "v1", Kind: "Namespace"}:                                {schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false},
	{Version: "v1", Kind: "ServiceAccount"}:                           {schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true},
	{Version: "v1", Kind: "Secret"}:                                   {schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	{Version: "v1", Kind: "Service"}:                                  {schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
	{Version: "v1", Kind: "PersistentVolumeClaim"}:                    {schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}, true},
	{Version: "v1", Kind: "Pod"}:                                      {schema.GroupVersionResource{Version: "v1", Resource: "pods"}, true},
	{Group: "apps", Version: "v1", Kind: "Deployment"}:                {schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true},
	{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"}:     {schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, true},
	{Group: "batch", Version: "v1", Kind: "Job"}:                      {schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, true},
	{Group: "batch", Version: "v1", Kind: "CronJob"}:                  {schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, true},
	{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}:      {schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}, true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}: {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, true},
}

// Apply sends obj with server-side apply as field manager skiff, taking
// over fields another manager set (skiff's objects are skiff's). A
// rejection is returned as the API server worded it.
func (c *Client) Apply(ctx context.Context, obj Object) error {
	gvk := obj.GetObjectKind().GroupVersionKind()
	res, ok := resources[gvk]
	if !ok {
		return fmt.Errorf("apply: skiff does not apply %s", gvk)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	delete(u, "status")
	if md, ok := u["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if tmpl, ok := nested(u, "spec", "template", "metadata"); ok {
		delete(tmpl, "creationTimestamp")
	}
	if tmpl, ok := nested(u, "spec", "jobTemplate", "metadata"); ok {
		delete(tmpl, "creationTimestamp")
	}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = c.dynamic.Resource(res.gvr)
	if res.namespaced {
		ri = c.dynamic.Resource(res.gvr).Namespace(obj.GetNamespace())
	}
	force := true
	if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// ApplyAll applies objs in order and stops at the first error.
func (c *Client) ApplyAll(ctx context.Context, objs []Object) error {
	for _, o := range objs {
		if err := c.Apply(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

func nested(u map[string]any, path ...string) (map[string]any, bool) {
	cur := u
	for _, p := range path {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// IsNotFound reports whether err is the API server's 404.
func IsNotFound(err error) bool { return apierrors.IsNotFound(err) }
