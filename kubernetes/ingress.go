package kubernetes

import (
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
)

// A cluster in ingress mode (Where.IngressClass) serves an app's traffic
// itself: skiff applies an Ingress of the chosen class per app, its hosts
// the app's (<app>.<base domain> and its domains), its backend the web
// Service, and skiff's router routes nothing there. The Ingress is an
// object of the release like the others: applied with the rest, changed
// when a domain is added or removed (the next Rollout), pruned when the
// app has no web process or the cluster goes back to skiff's router, and
// removed with the app.
//
// TLS is left to the cluster (no tls section, no Secret): a domain
// pointed at the cluster's ingress controller never lets skiff's router
// answer an ACME challenge for it, so skiff could hold no certificate
// there that renews; the cluster's own means (its controller's default
// certificate, cert-manager) do.

// Ingress is how a release is exposed through the cluster's ingress
// controller.
type Ingress struct {
	Class string   // the IngressClass (ingressClassName)
	Hosts []string // as skiff.ValidateDomain returns them; "*.example.com" is one label
}

// ingressName is the name of the app's Ingress: its web Service's.
const ingressName = "web"

// ingress is the Ingress of the release's web process: one rule per host,
// every path to the web Service's http port. nil when there is nothing to
// expose (no web process, or no host).
func ingress(r *Release, meta func(string, map[string]string) metav1.ObjectMeta) (*networkingv1.Ingress, error) {
	if r.Ingress == nil || !slices.ContainsFunc(r.Processes, func(p Process) bool { return p.Type == "web" }) {
		return nil, nil
	}
	if err := skiff.ValidateIngressClass(r.Ingress.Class); err != nil {
		return nil, fmt.Errorf("render: %v", err)
	}
	hosts := slices.Clone(r.Ingress.Hosts)
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	if len(hosts) == 0 {
		return nil, nil
	}
	prefix := networkingv1.PathTypePrefix
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: r.Name("web"), Port: networkingv1.ServiceBackendPort{Name: "http"}}}
	var rules []networkingv1.IngressRule
	for _, h := range hosts {
		if _, err := skiff.ValidateDomain(h); err != nil {
			return nil, fmt.Errorf("render: %v", err)
		}
		rules = append(rules, networkingv1.IngressRule{Host: h, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}}}}})
	}
	class := r.Ingress.Class
	return &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
		ObjectMeta: meta(r.Name(ingressName), map[string]string{LabelProcess: "web"}),
		Spec:       networkingv1.IngressSpec{IngressClassName: &class, Rules: rules},
	}, nil
}

// RoutesTraffic implements skiff.SelfRouting: a cluster in ingress mode
// serves its apps' traffic itself.
func (s *Scheduler) RoutesTraffic() bool { return s.cfg.Where.IngressClass != "" }

var _ skiff.SelfRouting = (*Scheduler)(nil)

// ingressesForbidden reports whether err is the API server refusing skiff
// ingresses: a cluster not in ingress mode need not grant them, and then
// skiff cannot have made any to prune or remove.
func ingressesForbidden(resource string, err error) bool {
	return resource == "ingresses" && apierrors.IsForbidden(err)
}
