package store_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestClusters(t *testing.T) {
	db, _ := open(t)
	admin := as(addUser(t, db, "root", true))
	c := &skiff.Cluster{Name: "prod", Kubeconfig: []byte("apiVersion: v1\n"), Namespace: "apps", Server: "https://10.0.0.1:6443",
		Version: "v1.37.2", Secret: []byte{1, 2, 3}}
	if err := db.CreateCluster(admin, c); err != nil || c.CreatedAt.IsZero() {
		t.Fatalf("create: %v", err)
	}
	if err := db.CreateCluster(admin, &skiff.Cluster{Name: "prod", Kubeconfig: []byte("x"), Secret: []byte("y")}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("a second cluster called prod: %v", err)
	}
	for _, bad := range []string{"", "Prod", "a/b", "-x", "a b", "0prod"} {
		if err := db.CreateCluster(admin, &skiff.Cluster{Name: bad, Kubeconfig: []byte("x"), Secret: []byte("y")}); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("cluster name %q: %v", bad, err)
		}
	}
	got, err := db.FindCluster(admin, "prod")
	if err != nil || !bytes.Equal(got.Kubeconfig, c.Kubeconfig) || !bytes.Equal(got.Secret, c.Secret) || got.Namespace != "apps" || got.Version != "v1.37.2" {
		t.Fatalf("find: %+v %v", got, err)
	}
	if list, err := db.Clusters(admin); err != nil || len(list) != 1 || list[0].Name != "prod" || list[0].IngressClass != "" {
		t.Fatalf("list: %v %v", list, err)
	}
	// clusters:set NAME ingress-class: stored, a bad class refused, no
	// cluster ENOTFOUND.
	if err := db.UpdateCluster(admin, &skiff.Cluster{Name: "prod", IngressClass: "nginx"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.FindCluster(admin, "prod"); got.IngressClass != "nginx" || !bytes.Equal(got.Kubeconfig, c.Kubeconfig) {
		t.Fatalf("after clusters:set: %+v", got)
	}
	if err := db.UpdateCluster(admin, &skiff.Cluster{Name: "prod", IngressClass: "Nginx;x"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("a bad ingress class: %v", err)
	}
	if err := db.UpdateCluster(admin, &skiff.Cluster{Name: "nope", IngressClass: "nginx"}); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("no such cluster: %v", err)
	}
	// clusters:set NAME registry: kept with its credentials, never in an
	// event.
	reg := &skiff.Cluster{Name: "prod", IngressClass: "nginx", Registry: "registry.example.com/team", RegistryUsername: "bob", RegistryPassword: []byte("hunter2")}
	if err := db.UpdateCluster(admin, reg); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.FindCluster(admin, "prod"); got.Registry != reg.Registry || got.RegistryUsername != "bob" || string(got.RegistryPassword) != "hunter2" || got.IngressClass != "nginx" {
		t.Fatalf("after clusters:set registry: %+v", got)
	}
	events, err := db.ListEvents(admin, skiff.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.Contains(e.Detail, "hunter2") || strings.Contains(e.Detail, "bob") {
			t.Errorf("an event shows the registry's credentials: %+v", e)
		}
	}
	if err := db.UpdateCluster(admin, &skiff.Cluster{Name: "prod", Registry: "bob:hunter2@registry.example.com"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("a registry with credentials in it: %v", err)
	}
	if err := db.UpdateCluster(admin, &skiff.Cluster{Name: "prod"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.FindCluster(admin, "prod"); got.Registry != "" || len(got.RegistryPassword) != 0 {
		t.Fatalf("after clusters:set back to skiff's registry: %+v", got)
	}
	if err := db.CreateCluster(admin, &skiff.Cluster{Name: "bad", Kubeconfig: []byte("x"), Secret: []byte("y"), IngressClass: "-x"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("created with a bad ingress class: %v", err)
	}
	if err := db.DeleteCluster(admin, "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindCluster(admin, "prod"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("find after delete: %v", err)
	}
	if err := db.DeleteCluster(admin, "prod"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("delete again: %v", err)
	}
}
