package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

const registryPassword = "reg-pass-never-printed"

// clusters:add --registry and clusters:set NAME registry: a reference with
// credentials or a scheme in it is refused without repeating them, the
// password comes on stdin only, only an admin may set it, and no list,
// report or event shows the registry's credentials.
func TestClusterRegistryInput(t *testing.T) {
	s, kc := newClusterServer(t)
	s.answers([]clusterInput{
		{kc, []string{"clusters:add", "stage", "--registry", "bob:" + registryPassword + "@registry.example.com/team"}, 1, "has credentials in it"},
		{kc, []string{"clusters:add", "stage", "--registry", "https://registry.example.com"}, 1, "has a scheme"},
		{"", []string{"clusters:set", "prod", "registry", "bob:" + registryPassword + "@registry.example.com"}, 1, "has credentials in it"},
		{"", []string{"clusters:set", "prod", "registry", "https://" + registryPassword + "@registry.example.com"}, 1, "has credentials in it"},
		{"", []string{"clusters:set", "prod", "registry", "Registry.Example.com"}, 1, "invalid registry"},
		{"", []string{"clusters:set", "prod", "registry", "registry.example.com/Team"}, 1, "invalid registry"},
		{"", []string{"clusters:set", "prod", "registry", "registry.example.com/a b"}, 1, "invalid registry"},
		{"", []string{"clusters:set", "prod", "registry", "registry.example.com", "--username", "bob"}, 1, "no password on stdin"},
		{"\n", []string{"clusters:set", "prod", "registry", "registry.example.com", "--username", "bob"}, 1, "no password on stdin"},
		{registryPassword, []string{"clusters:set", "prod", "registry", "registry.example.com", "--username", ""}, 1, "--username is empty"},
		{registryPassword, []string{"clusters:set", "prod", "registry", "registry.example.com", "--username", "a:b"}, 1, "invalid registry user"},
		{strings.Repeat("x", 16<<10+1), []string{"clusters:set", "prod", "registry", "registry.example.com", "--username", "bob"}, 1, "over 16 KiB"},
		{registryPassword, []string{"clusters:set", "prod", "registry", "--username", "bob"}, 2, "--username goes with a registry"},
		{registryPassword, []string{"clusters:set", "prod", "ingress-class", "nginx", "--username", "bob"}, 2, "--username goes with registry"},
		{registryPassword, []string{"clusters:set", "nope", "registry", "registry.example.com", "--username", "bob"}, 1, "no cluster nope"},
		// The cluster is checked again, and it does not answer: nothing changes.
		{registryPassword, []string{"clusters:set", "prod", "registry", "registry.example.com", "--username", "bob"}, 1, "127.0.0.1"},
	}, registryPassword)
	ctx := context.Background()
	if got, _ := s.db.FindCluster(ctx, "prod"); got.Registry != "" || len(got.RegistryPassword) != 0 {
		t.Fatalf("refusals changed the cluster: %+v", got)
	}
	// A cluster with an external registry's credentials: never shown.
	if err := s.db.UpdateCluster(skiff.WithActor(ctx, s.users["root"]), &skiff.Cluster{Name: "prod", Registry: "registry.example.com/team",
		RegistryUsername: "registry-user-never-printed", RegistryPassword: []byte(registryPassword)}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"clusters"}, {"clusters", "--format", "json"}, {"events"}, {"events", "--format", "json"}} {
		r := s.must("root", args...)
		if strings.Contains(r.String(), registryPassword) || strings.Contains(r.String(), "registry-user-never-printed") {
			t.Errorf("%v printed the registry's credentials:\n%s", args, r)
		}
		if args[0] == "clusters" && !strings.Contains(r.stdout, "registry.example.com/team") {
			t.Errorf("%v does not name the registry:\n%s", args, r)
		}
	}
	s.must("alice", "apps:create", "shop")
	s.must("root", "scheduler:set", "shop", "k8s", "--cluster", "prod")
	for _, args := range [][]string{{"scheduler:report", "shop"}, {"scheduler:report", "shop", "--format", "json"}} {
		r := s.must("alice", args...)
		if !strings.Contains(r.stdout, "registry.example.com/team") || !strings.Contains(r.stdout, "router") ||
			strings.Contains(r.String(), registryPassword) || strings.Contains(r.String(), "registry-user-never-printed") {
			t.Errorf("%v by the app's owner:\n%s", args, r)
		}
	}
	for _, args := range [][]string{{"clusters:set", "prod", "registry", "evil.example.com", "--username", "x"}, {"clusters:set", "prod", "registry"}} {
		if r := s.run("alice", registryPassword, args...); r.code != 1 || strings.TrimSpace(r.stderr) != "!     not authorized" || r.stdout != "" {
			t.Errorf("%v by alice: %s", args, r)
		}
	}
	if got, _ := s.db.FindCluster(ctx, "prod"); got.Registry != "registry.example.com/team" {
		t.Fatalf("alice changed the cluster's registry: %+v", got)
	}
}
