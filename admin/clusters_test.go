package admin_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/internal/applog"
	"github.com/skiffhq/skiff/kubernetes"
	"github.com/skiffhq/skiff/store"
)

// The clusters' commands over the real kubernetes.Clusters, whose
// kubeconfigs point at an API that is not there (the e2e tier k8s adds a
// real cluster): who may use them, what they refuse, and that the
// credentials they keep are never printed.

const clusterToken = "tok-3b1f9c0e-never-printed"

// deadKubeconfig names an API at a local port nothing listens on, with a
// bearer token that must never be printed.
func deadKubeconfig(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://` + addr + `
    insecure-skip-tls-verify: true
users:
- name: u
  user:
    token: ` + clusterToken + `
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
}

func withClusters(t *testing.T) serverOption {
	return func(db *store.DB, dcfg *deploy.Config, svc *admin.Services) {
		logs, err := applog.New(filepath.Join(t.TempDir(), "logs"), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		cs := kubernetes.NewClusters(kubernetes.ClustersConfig{Store: db, Logs: logs, Registry: func(context.Context, *skiff.Cluster) error { return nil }})
		t.Cleanup(func() { cs.CloseAll(); logs.Close() })
		dcfg.Clusters = cs
		svc.Clusters, svc.ClusterStore = cs, db
	}
}

// newClusterServer is a server with clusters, where cluster prod is stored
// already, and a kubeconfig whose API does not answer.
func newClusterServer(t *testing.T) (*server, string) {
	s := newServer(t, withClusters(t))
	s.addCluster("prod")
	return s, deadKubeconfig(t)
}

// clusterInput is a command line root runs, its stdin, and its answer:
// the exit status and what stderr says.
type clusterInput struct {
	stdin string
	args  []string
	code  int
	want  string
}

// answers runs each case as root and checks its answer, and that it
// prints neither the kubeconfig's token nor any of secrets.
func (s *server) answers(cases []clusterInput, secrets ...string) {
	s.t.Helper()
	for _, tc := range cases {
		r := s.run("root", tc.stdin, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			s.t.Errorf("%v: %d, want %d and %q in:\n%s", tc.args, r.code, tc.code, tc.want, r)
		}
		for _, secret := range append(secrets, clusterToken) {
			if strings.Contains(r.String(), secret) {
				s.t.Errorf("%v printed a credential:\n%s", tc.args, r)
			}
		}
	}
}

// addCluster stores a cluster as clusters:add would once its check passed.
func (s *server) addCluster(name string) {
	s.t.Helper()
	c := &skiff.Cluster{Name: name, Kubeconfig: []byte(deadKubeconfig(s.t)), Server: "https://10.9.9.9:6443", Version: "v1.37.2",
		Secret: []byte("pull-secret-never-printed")}
	if err := s.db.CreateCluster(skiff.WithActor(context.Background(), s.users["root"]), c); err != nil {
		s.t.Fatal(err)
	}
}

// Only an admin sees, adds, removes clusters or moves apps; nobody else
// learns anything or changes anything, their own apps included.
func TestClustersAreAdminOnly(t *testing.T) {
	s, kc := newClusterServer(t)
	s.must("alice", "apps:create", "shop")
	for _, args := range [][]string{
		{"clusters"}, {"clusters:list", "--format", "json"}, {"clusters:rbac"}, {"clusters:add", "mine"}, {"clusters:remove", "prod"},
		{"scheduler:set", "shop", "k8s", "--cluster", "prod"}, {"scheduler:set", "shop", "k8s"}, {"scheduler:set", "shop", "local"},
	} {
		r := s.run("alice", kc, args...)
		if r.code != 1 || strings.TrimSpace(r.stderr) != "!     not authorized" || r.stdout != "" {
			t.Errorf("%v by alice: %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := s.run("bob", "", "scheduler:report", "shop"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") || strings.Contains(r.String(), "prod") {
		t.Errorf("scheduler:report of alice's app by bob: %s", r)
	}
	if r := s.must("alice", "scheduler:report", "shop"); !strings.Contains(r.stdout, "local") {
		t.Errorf("scheduler:report after the refusals: %s", r)
	}
	list, err := s.db.Clusters(context.Background())
	if err != nil || len(list) != 1 || list[0].Name != "prod" {
		t.Fatalf("the clusters after the refusals: %v %v", list, err)
	}
}

// clusters:add refuses bad input before it reaches anything, and a
// cluster that does not answer without storing it; no output, list or
// event shows a kubeconfig's credential or a cluster's pull secret.
func TestClustersAddRefusesAndNeverPrintsCredentials(t *testing.T) {
	s := newServer(t, withClusters(t))
	kc := deadKubeconfig(t)
	s.answers([]clusterInput{
		{kc, []string{"clusters:add", "Prod"}, 1, "invalid cluster name"},
		{kc, []string{"clusters:add", "a/b"}, 1, "invalid cluster name"},
		{kc, []string{"clusters:add", strings.Repeat("a", 31)}, 1, "invalid cluster name"},
		{kc, []string{"clusters:add", "prod", "--namespace", "Bad_NS"}, 1, "invalid namespace"},
		{"", []string{"clusters:add", "prod"}, 1, "no kubeconfig on stdin"},
		{"  \n", []string{"clusters:add", "prod"}, 1, "no kubeconfig on stdin"},
		{strings.Repeat("#", 1<<20+1), []string{"clusters:add", "prod"}, 1, "over 1024 KiB"},
		{"apiVersion: v1\nclusters: [", []string{"clusters:add", "prod"}, 1, "does not parse"},
		{kc, []string{"clusters:add", "prod"}, 1, "127.0.0.1"}, // the API does not answer
	})
	if list, _ := s.db.Clusters(context.Background()); len(list) != 0 {
		t.Fatalf("refused clusters:add stored %v", list)
	}
	s.addCluster("prod")
	for _, args := range [][]string{{"clusters"}, {"clusters", "--format", "json"}, {"events"}, {"events", "--format", "json"}} {
		r := s.must("root", args...)
		if strings.Contains(r.String(), clusterToken) || strings.Contains(r.String(), "pull-secret") || strings.Contains(r.String(), "never-printed") {
			t.Errorf("%v printed a credential:\n%s", args, r)
		}
		if args[0] == "clusters" && !strings.Contains(r.stdout, "prod") {
			t.Errorf("%v lacks the cluster:\n%s", args, r)
		}
	}
	if r := s.run("root", kc, "clusters:add", "prod"); r.code != 1 || !strings.Contains(r.stderr, "exists already") {
		t.Errorf("a second prod: %s", r)
	}
}

// scheduler:set's refusals, and a move of an app never deployed, which
// only records it (and keeps its cluster from being removed).
func TestSchedulerSet(t *testing.T) {
	s := newServer(t, withClusters(t))
	s.must("alice", "apps:create", "shop")
	if r := s.run("root", "", "scheduler:set", "shop", "k8s"); r.code != 1 || !strings.Contains(r.stderr, "no cluster yet") {
		t.Errorf("k8s without any cluster: %s", r)
	}
	s.addCluster("prod")
	s.addCluster("stage")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"scheduler:set", "shop", "k8s"}, 1, "say which cluster with --cluster: prod, stage"},
		{[]string{"scheduler:set", "shop", "k8s", "--cluster", "nope"}, 1, "no cluster nope"},
		{[]string{"scheduler:set", "shop", "k8s", "--cluster", "../x"}, 1, "invalid cluster name"},
		{[]string{"scheduler:set", "shop", "swarm"}, 2, "not a scheduler"},
		{[]string{"scheduler:set", "shop", "local", "--cluster", "prod"}, 2, "--cluster goes with k8s"},
		{[]string{"scheduler:set", "nope", "k8s", "--cluster", "prod"}, 1, "nope"},
	} {
		if r := s.run("root", "", tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: %d, want %d and %q in:\n%s", tc.args, r.code, tc.code, tc.want, r)
		}
	}
	if r := s.must("root", "scheduler:report", "shop"); !strings.Contains(r.stdout, "local") {
		t.Fatalf("refusals moved the app: %s", r)
	}
	r := s.must("root", "scheduler:set", "shop", "k8s", "--cluster", "prod")
	if !strings.Contains(r.stderr, "shop will run on cluster prod from its first deploy") || !strings.Contains(r.stdout, "prod") {
		t.Fatalf("scheduler:set of an app never deployed: %s", r)
	}
	if r := s.must("alice", "scheduler:report", "shop", "--format", "json"); !strings.Contains(r.stdout, `"cluster": "prod"`) ||
		strings.Contains(r.stdout, clusterToken) {
		t.Fatalf("scheduler:report by the owner: %s", r)
	}
	if r := s.run("root", "", "clusters:remove", "prod"); r.code != 1 || !strings.Contains(r.stderr, "shop run on cluster prod") {
		t.Fatalf("clusters:remove of a cluster an app is set to: %s", r)
	}
	s.must("root", "storage:ensure-directory", "data")
	if r := s.run("root", "", "storage:mount", "shop", "data:/data"); r.code != 1 || !strings.Contains(r.stderr, "cannot tell whether cluster prod holds the data of storage data") {
		t.Fatalf("storage:mount of an app on a cluster: %s", r)
	}
	s.must("root", "scheduler:set", "shop", "local")
	s.must("root", "clusters:remove", "prod")
	if r := s.must("root", "clusters"); strings.Contains(r.stdout, "prod") || !strings.Contains(r.stdout, "stage") {
		t.Fatalf("clusters after removing prod: %s", r)
	}
}
