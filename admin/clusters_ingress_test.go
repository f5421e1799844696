package admin_test

import (
	"context"
	"strings"
	"testing"
)

// clusters:add --ingress-class and clusters:set NAME ingress-class: bad
// class names and settings are refused before anything is asked of the
// cluster, only an admin may change a cluster, and a cluster that does
// not answer keeps what it had.
func TestClusterIngressClassInput(t *testing.T) {
	s, kc := newClusterServer(t)
	s.answers([]clusterInput{
		{kc, []string{"clusters:add", "stage", "--ingress-class", "Nginx"}, 1, "invalid ingress class"},
		{kc, []string{"clusters:add", "stage", "--ingress-class", ""}, 1, "invalid ingress class"},
		{kc, []string{"clusters:add", "stage", "--ingress-class", "nginx;rm -rf /"}, 1, "invalid ingress class"},
		{kc, []string{"clusters:add", "stage", "--ingress-class", strings.Repeat("a", 254)}, 1, "invalid ingress class"},
		{"", []string{"clusters:set", "prod", "ingress-class", "-nginx"}, 2, "unknown flag"},
		{"", []string{"clusters:set", "prod", "ingress-class", "nginx-"}, 1, "invalid ingress class"},
		{"", []string{"clusters:set", "prod", "ingress-class", "a..b"}, 1, "invalid ingress class"},
		{"", []string{"clusters:set", "prod", "ingress-class", "ngïnx"}, 1, "invalid ingress class"},
		{"", []string{"clusters:set", "prod", "colour", "blue"}, 2, "not a cluster setting"},
		{"", []string{"clusters:set", "prod"}, 2, ""},
		{"", []string{"clusters:set", "Prod", "ingress-class", "nginx"}, 1, "invalid cluster name"},
		{"", []string{"clusters:set", "nope", "ingress-class", "nginx"}, 1, "no cluster nope"},
		// The check runs again: a cluster that does not answer is not changed.
		{"", []string{"clusters:set", "prod", "ingress-class", "nginx"}, 1, "127.0.0.1"},
	})
	list, err := s.db.Clusters(context.Background())
	if err != nil || len(list) != 1 || list[0].IngressClass != "" {
		t.Fatalf("the clusters after the refusals: %+v %v", list, err)
	}
	if r := s.must("root", "clusters"); !strings.Contains(r.stdout, "skiff's router") {
		t.Errorf("clusters does not say how traffic reaches the apps:\n%s", r)
	}
	s.must("alice", "apps:create", "shop")
	for _, args := range [][]string{{"clusters:set", "prod", "ingress-class", "nginx"}, {"clusters:set", "prod", "ingress-class"},
		{"clusters:add", "mine", "--ingress-class", "nginx"}} {
		if r := s.run("alice", kc, args...); r.code != 1 || strings.TrimSpace(r.stderr) != "!     not authorized" || r.stdout != "" {
			t.Errorf("%v by alice: %s", args, r)
		}
	}
}
