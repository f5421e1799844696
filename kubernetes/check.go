package kubernetes

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff"
)

// RBAC is rbac.yaml: the ClusterRole skiff needs and a binding of it, for an
// admin to apply (`clusters:rbac`).
//
//go:embed rbac.yaml
var RBAC []byte

// NodeStatsRBAC is rbac-node-stats.yaml: an optional grant of the kubelets'
// figures (`get nodes/proxy`) for ps, where the cluster has no metrics API.
//
//go:embed rbac-node-stats.yaml
var NodeStatsRBAC []byte

// Rules are the rules of skiff's ClusterRole in rbac.yaml.
func Rules() []rbacv1.PolicyRule {
	for _, doc := range bytes.Split(RBAC, []byte("\n---\n")) {
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(doc, &role); err == nil && role.Kind == "ClusterRole" {
			return role.Rules
		}
	}
	panic("kubernetes: rbac.yaml has no ClusterRole") // a test reads it
}

// Where says where a cluster runs skiff's apps.
type Where struct {
	// Namespace, when set, is the one namespace every app lives in (the
	// cluster was added with --namespace); else each app has its own.
	Namespace string
	// IngressClass, when set, exposes the apps with Ingresses of that
	// class (ingress.go); "" leaves their traffic to skiff's router.
	IngressClass string
	// StorageClass is the class of the claims of the apps' volumes; "":
	// the cluster's default class.
	StorageClass string
}

// Check tells at once whether skiff can work with the cluster: the API
// answers, the namespace (if one is given) exists, and skiff is granted
// every rule of rbac.yaml there (or cluster-wide; the ingresses only for an
// ingress class, the StorageClasses only for a storage class, which must
// exist). It returns the server's version; a missing grant is an EINVALID
// error that lists them all.
func (c *Client) Check(ctx context.Context, w Where) (string, error) {
	v, err := c.Typed.Discovery().ServerVersion()
	if err != nil {
		return "", skiff.Errorf(skiff.EINVALID, "the cluster's API does not answer: %v", err)
	}
	if w.Namespace != "" {
		if _, err := c.Typed.CoreV1().Namespaces().Get(ctx, w.Namespace, metav1.GetOptions{}); err != nil {
			if IsNotFound(err) {
				return "", skiff.Errorf(skiff.EINVALID, "namespace %s does not exist on the cluster; create it, or add the cluster without --namespace", w.Namespace)
			}
			if apierrors.IsForbidden(err) {
				return "", skiff.Errorf(skiff.EINVALID, "skiff may not read namespace %s: create it if it does not exist, and bind the ClusterRole of `skiff clusters:rbac` to skiff's user with a RoleBinding in it", w.Namespace)
			}
			return "", skiff.Errorf(skiff.EINVALID, "the cluster does not answer about namespace %s: %v", w.Namespace, err)
		}
	}
	type ask struct{ group, resource, sub, verb string }
	var asks []ask
	for _, r := range Rules() {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				if res == "ingresses" && w.IngressClass == "" || res == "storageclasses" && w.StorageClass == "" {
					continue
				}
				resource, sub, _ := strings.Cut(res, "/")
				for _, v := range r.Verbs {
					if resource == "namespaces" && w.Namespace != "" && v != "get" {
						continue // skiff makes no namespace in a shared one
					}
					asks = append(asks, ask{g, resource, sub, v})
				}
			}
		}
	}
	var (
		mu      sync.Mutex
		missing []string // in w.Namespace, or cluster-wide when it is ""
		wide    []string // cluster-wide whatever w.Namespace is
		failed  error
		wg      sync.WaitGroup
		slots   = make(chan struct{}, 8)
	)
	for _, a := range asks {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			ns := w.Namespace
			if a.resource == "namespaces" && a.verb == "create" || a.resource == "storageclasses" {
				ns = "" // cluster-wide: a RoleBinding in ns does not grant it
			}
			review := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: a.verb,
					Group: a.group, Resource: a.resource, Subresource: a.sub, Name: nameFor(a.resource, w)}}}
			got, err := c.Typed.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed = err
			case !got.Status.Allowed:
				res := a.resource
				if a.sub != "" {
					res += "/" + a.sub
				}
				if a.group != "" {
					res += "." + a.group
				}
				if ns == "" && w.Namespace != "" {
					wide = append(wide, a.verb+" "+res)
				} else {
					missing = append(missing, a.verb+" "+res)
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return "", fmt.Errorf("check the cluster's grants: %w", failed)
	}
	if len(missing)+len(wide) > 0 {
		return "", skiff.Errorf(skiff.EINVALID, "skiff may not %s; bind the ClusterRole of `skiff clusters:rbac` to skiff's user", missingGrants(missing, wide, w.Namespace))
	}
	return v.GitVersion, nil
}

// missingGrants says which grants skiff lacks where: in a shared
// namespace most are the namespace's, but some (StorageClasses) only a
// ClusterRoleBinding gives.
func missingGrants(missing, wide []string, namespace string) string {
	slices.Sort(missing)
	slices.Sort(wide)
	if namespace == "" {
		return strings.Join(missing, ", ") + " cluster-wide"
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, strings.Join(missing, ", ")+" in namespace "+namespace)
	}
	if len(wide) > 0 {
		parts = append(parts, strings.Join(wide, ", ")+" cluster-wide (a RoleBinding in "+namespace+" does not grant it: bind it with a ClusterRoleBinding)")
	}
	return strings.Join(parts, ", nor ")
}

// nameFor is the object name a review asks about: a shared namespace's own
// name for namespaces (a RoleBinding there grants only that one).
func nameFor(resource string, w Where) string {
	if resource == "namespaces" && w.Namespace != "" {
		return w.Namespace
	}
	return ""
}
