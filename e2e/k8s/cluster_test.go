package k8s

import (
	"bytes"
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/kubernetes"
)

// adminClient is a client of the cluster as its administrator, for what the
// tests check or do behind skiff's back.
func adminClient(c *k8stestbed.Cluster) (*kubernetes.Client, error) {
	cfg, err := kubernetes.RESTConfig(c.AdminKubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.Dial = c.DialContext
	return kubernetes.NewClient(cfg)
}

// applyRBAC creates what `clusters:rbac` printed, as the cluster's admin
// would with kubectl apply.
func applyRBAC(ctx context.Context, c *k8stestbed.Cluster, docs []byte) error {
	a, err := adminClient(c)
	if err != nil {
		return err
	}
	for _, doc := range bytes.Split(docs, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return err
		}
		switch meta.Kind {
		case "ClusterRole":
			var o rbacv1.ClusterRole
			if err = yaml.Unmarshal(doc, &o); err == nil {
				_, err = a.Typed.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
			}
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			if err = yaml.Unmarshal(doc, &o); err == nil {
				_, err = a.Typed.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
			}
		default:
			err = fmt.Errorf("clusters:rbac printed a %q", meta.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
