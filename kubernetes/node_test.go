package kubernetes

// On a full node: releases pulled from skiff's registry (by digest, with
// the app's pull secret, over TLS) roll out, and a rollout that cannot
// succeed fails with the pod's reason.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/imagestore"
	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/registry"
)

var (
	nodeOnce sync.Once
	node     *nodeBed
	nodeErr  error
)

type nodeBed struct {
	*k8stestbed.Cluster
	client *Client
	secret []byte
	digest string // the test bed's app
	probe  string // the conformance suite's probe (every app may pull it)
}

type regAccess struct {
	secret []byte
	images map[string][]string
}

func (a *regAccess) ClusterSecret(_ context.Context, cluster string) ([]byte, error) {
	if cluster == "tb" {
		return a.secret, nil
	}
	return nil, errors.New("no such cluster")
}

func (a *regAccess) AppImages(_ context.Context, appID string) ([]string, error) {
	return append(a.images[appID], a.images["*"]...), nil
}

// oneNode is a cluster with one node and skiff's registry serving the
// test app's image to the apps "n0000000000000001" … inside the cluster's
// network.
func oneNode(t *testing.T) *nodeBed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes test bed needs root (sudo make test runs it)")
	}
	nodeOnce.Do(func() { node, nodeErr = startNode(t, 1) })
	if nodeErr != nil {
		t.Fatal(nodeErr)
	}
	return node
}

func startNode(t *testing.T, nodes int) (*nodeBed, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// Stdout and stderr apart in pods' logs: the conformance suite's runs
	// that end before skiff attaches keep them apart so.
	c, err := k8stestbed.Start(ctx, k8stestbed.Options{Nodes: nodes, Log: t.Logf, FeatureGates: "PodLogsQuerySplitStreams=true"})
	if err != nil {
		return nil, err
	}
	nodeBeds = append(nodeBeds, c)
	nb := &nodeBed{Cluster: c, secret: []byte("test-cluster-secret")}
	// Not t.TempDir: the node outlives the test that starts it.
	dir, err := os.MkdirTemp("", "skiff-registry-")
	if err != nil {
		return nil, err
	}
	tempDirs = append(tempDirs, dir)
	store, err := imagestore.Open(dir)
	if err != nil {
		return nil, err
	}
	img, err := c.App(ctx)
	if err != nil {
		return nil, err
	}
	h, err := store.Put(ctx, "skiff.local/app/test:1", img)
	if err != nil {
		return nil, err
	}
	nb.digest = h.String()
	if h, err = store.Put(ctx, "skiff.local/probe:1", probeImage(t)); err != nil {
		return nil, err
	}
	nb.probe = h.String()
	acc := &regAccess{secret: nb.secret, images: map[string][]string{"*": {nb.probe}}}
	for i := range 10 {
		acc.images[fmt.Sprintf("n%015d", i)] = []string{nb.digest}
	}
	certPEM, keyPEM, err := c.IssueCert(c.HostIP())
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	l, err := c.Listen("tcp", k8stestbed.RegistryHost)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: registry.New(store, acc, nil), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()

	cfg, err := RESTConfig(c.AdminKubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.Dial = c.DialContext
	if nb.client, err = NewClient(cfg); err != nil {
		return nil, err
	}
	return nb, nil
}

// nodeBeds are stopped by TestMain with the quick tier's.
var (
	nodeBeds []*k8stestbed.Cluster
	tempDirs []string
)

var testLimits = skiff.Limits{MemoryBytes: 64 << 20, CPU: 0.2}

func listApp(appID string) metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: AppSelector(appID)}
}

// release is a release of the test app from skiff's registry.
func (nb *nodeBed) release(n int, command ...string) *Release {
	appID := fmt.Sprintf("n%015d", n)
	user, pass := registry.Credentials(nb.secret, "tb", appID)
	uid := int64(65534)
	return &Release{
		Namespace: "skiff-node-" + appID[len(appID)-2:], AppID: appID, App: fmt.Sprintf("node%d", n), Version: 1,
		Image: registry.Reference(k8stestbed.RegistryHost, appID, nb.digest), UID: &uid, GID: &uid,
		Config:    map[string]string{"GREETING": "hi"},
		Processes: []Process{{Type: "web", Replicas: 2, Command: command, Limits: testLimits}},
		Check:     Check{Deadline: 20 * time.Second, WaitToRetire: time.Second},
		Registry:  &Registry{Server: k8stestbed.RegistryHost, Username: user, Password: pass},
	}
}

func (nb *nodeBed) rollout(t *testing.T, r *Release) (string, error) {
	t.Helper()
	m := applyRelease(t, nb.client, r)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var lines []string
	err := nb.client.WaitRollout(ctx, r, m, func(s string) { lines = append(lines, s); t.Log(s) })
	return strings.Join(lines, "\n"), err
}

func TestRolloutFromSkiffRegistry(t *testing.T) {
	nb := oneNode(t)
	r := nb.release(1)
	out, err := nb.rollout(t, r)
	if err != nil {
		t.Fatalf("rollout: %v\n%s\n%s", err, nb.Logs("kubelet-1", 20), nb.Logs("containerd-1", 20))
	}
	for _, want := range []string{"scheduled on tb-node1", "Pulling", "2 of 2 new pods ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("the rollout's progress has no %q:\n%s", want, out)
		}
	}
	pods, err := nb.client.Typed.CoreV1().Pods(r.Namespace).List(context.Background(), listApp(r.AppID))
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("pods: %v", err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: nb.DialContext}}
	resp, err := client.Get("http://" + pods.Items[0].Status.PodIP + ":5000/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "hi") {
		t.Fatalf("the pod answered %q", b)
	}

	// v2 with another greeting replaces every pod, and then is done.
	r.Version, r.Config = 2, map[string]string{"GREETING": "v2"}
	if out, err := nb.rollout(t, r); err != nil {
		t.Fatalf("rollout of v2: %v\n%s", err, out)
	}
	pods, _ = nb.client.Typed.CoreV1().Pods(r.Namespace).List(context.Background(), listApp(r.AppID))
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Labels[LabelRelease] != "2" {
			t.Errorf("pod %s of release %s after the rollout of v2", p.Name, p.Labels[LabelRelease])
		}
	}
}

func TestRolloutFailsWithThePodsReason(t *testing.T) {
	nb := oneNode(t)
	for _, c := range []struct {
		name    string
		mutate  func(*Release)
		reasons []string
		says    string // in the message
	}{
		{"an image the registry does not have", func(r *Release) {
			r.Image = registry.Reference(k8stestbed.RegistryHost, r.AppID, "sha256:"+strings.Repeat("0", 64))
		}, []string{"ErrImagePull", "ImagePullBackOff"}, "not found"},
		{"a pull secret of another app", func(r *Release) {
			r.Registry.Username, r.Registry.Password = registry.Credentials(nb.secret, "tb", "n000000000000009")
		}, []string{"ErrImagePull", "ImagePullBackOff"}, "not found"},
		{"a process that exits", func(r *Release) { r.Processes[0].Command = []string{"/tbapp", "exit"} }, []string{"CrashLoopBackOff"}, "status 3"},
		{"a web process that never listens", func(r *Release) {
			r.Processes[0].Command = []string{"/tbapp", "pause"}
			r.Check.Deadline = 3 * time.Second
		}, []string{"CrashLoopBackOff"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := nb.release(2 + len(c.name)%7)
			r.Namespace = "skiff-fail-" + strings.ReplaceAll(c.name[:12], " ", "-")
			r.Processes[0].Replicas = 1
			c.mutate(r)
			out, err := nb.rollout(t, r)
			var re *RolloutError
			if !errors.As(err, &re) {
				t.Fatalf("rollout: %v\n%s", err, out)
			}
			ok := false
			for _, reason := range c.reasons {
				ok = ok || re.Reason == reason
			}
			if !ok || re.Pod == "" || !strings.Contains(re.Message, c.says) {
				t.Fatalf("reason %q (pod %q), want one of %v saying %q: %v", re.Reason, re.Pod, c.reasons, c.says, re)
			}
		})
	}
}

// A pull that fails once and then would succeed does not fail the rollout:
// the pod's pull secret appears only after the kubelet's first pull went
// without it (401), as when the kubelet does not sync its cache of a
// secret just applied within its one second, on a loaded node (CI saw it
// so). The kubelet's retry pulls with the secret.
func TestRolloutOutlastsAPassingPullFailure(t *testing.T) {
	nb := oneNode(t)
	r := nb.release(9)
	r.Processes[0].Replicas = 1
	m, err := Render(r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var rest []Object
	for _, o := range m.Objects() {
		if o != Object(m.PullSecret) {
			rest = append(rest, o)
		}
	}
	if err := nb.client.ApplyAll(ctx, rest); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan error, 1)
	go func() {
		done <- nb.client.WaitRollout(ctx, r, m, func(s string) {
			mu.Lock()
			lines = append(lines, s)
			mu.Unlock()
			t.Log(s)
		})
	}()
	// The pod fails its first pull; then its secret comes.
	failed := false
	for !failed {
		select {
		case err := <-done:
			t.Fatalf("the rollout ended before the pull secret came: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		pods, err := nb.client.Typed.CoreV1().Pods(r.Namespace).List(ctx, listApp(r.AppID))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if w := waiting(&p); w != nil && pulling[w.Reason] {
				failed = true
			}
		}
	}
	if err := nb.client.Apply(ctx, m.PullSecret); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rollout: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if out := strings.Join(lines, "\n"); !strings.Contains(out, "the kubelet retries") || !strings.Contains(out, "1 of 1 new pods ready") {
		t.Errorf("the rollout's progress:\n%s", out)
	}
}
