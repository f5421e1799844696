package k8stestbed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T, nodes int) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes test bed needs root (sudo make test runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Nodes: nodes, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.tails())
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if left := c.Leftovers(); len(left) > 0 {
			t.Errorf("the test bed left on the host:\n%s", strings.Join(left, "\n"))
		}
	})
	return c
}

// api sends a request as the administrator and decodes the answer into out.
func api(t *testing.T, c *Cluster, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.Server+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func TestControlPlaneOnly(t *testing.T) {
	c := start(t, 0)
	var v struct{ GitVersion string }
	if code := api(t, c, "GET", "/version", nil, &v); code != 200 || v.GitVersion != "v1.37.2" {
		t.Fatalf("version: %d %q", code, v.GitVersion)
	}
	// A user with no RBAC grant is refused: the API server authorizes.
	kc, err := c.UserKubeconfig("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(kc, []byte("client-certificate-data")) {
		t.Fatalf("kubeconfig: %s", kc)
	}
	p, _ := c.ca.issue("nobody", nil)
	resp, err := c.HTTPClient(p).Get(c.Server + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a user without grants listed namespaces: %s", resp.Status)
	}
}

type podStatus struct {
	Spec   struct{ NodeName string }
	Status struct {
		Phase      string
		PodIP      string
		Conditions []struct{ Type, Status string }
	}
}

func (p podStatus) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return true
		}
	}
	return false
}

// runPod starts a pod of the test app on node and returns it once ready.
func runPod(t *testing.T, c *Cluster, name, node string) podStatus {
	t.Helper()
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"nodeName":                     node,
			"automountServiceAccountToken": false,
			"containers": []any{map[string]any{
				"name": "app", "image": AppImage, "imagePullPolicy": "Never",
				"env":            []any{map[string]any{"name": "GREETING", "value": "hello from " + node}},
				"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/", "port": 8080}, "periodSeconds": 1},
			}},
		},
	}
	if code := api(t, c, "POST", "/api/v1/namespaces/default/pods", pod, nil); code != http.StatusCreated {
		t.Fatalf("create pod: %d", code)
	}
	var st podStatus
	deadline := time.Now().Add(2 * time.Minute)
	for !st.ready() {
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not ready: %+v\n%s", name, st, c.Logs("kubelet-1", 20))
		}
		time.Sleep(200 * time.Millisecond)
		api(t, c, "GET", "/api/v1/namespaces/default/pods/"+name, nil, &st)
	}
	return st
}

// get fetches url from inside the cluster's network.
func fetch(t *testing.T, c *Cluster, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: c.DialContext}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestOneNode(t *testing.T) {
	c := start(t, 1)
	t0 := time.Now()
	st := runPod(t, c, "hello", c.NodeNames[0])
	t.Logf("pod ready in %.1fs", time.Since(t0).Seconds())
	if got := fetch(t, c, fmt.Sprintf("http://%s:8080/", st.Status.PodIP)); !strings.Contains(got, "hello from tb-node1") {
		t.Fatalf("the pod answered %q", got)
	}
	// The API server reaches the kubelet for logs (by the node's address).
	req, _ := http.NewRequest("GET", c.Server+"/api/v1/namespaces/default/pods/hello/log", nil)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "listening on 8080") {
		t.Fatalf("pod log: %s %s", resp.Status, b)
	}
}

// A test process killed with -9 leaves pods, shims and mounts behind; the
// next test bed's start sweeps them away.
func TestSweepAfterKill(t *testing.T) {
	if os.Getenv("SKIFF_TB_CHILD") == "1" {
		ctx := context.Background()
		c, err := Start(ctx, Options{Nodes: 1})
		if err != nil {
			t.Fatal(err)
		}
		runPod(t, c, "orphan", c.NodeNames[0])
		fmt.Printf("READY %s %s\n", c.Name, c.Dir)
		time.Sleep(10 * time.Minute)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes test bed needs root (sudo make test runs it)")
	}
	child := exec.Command(os.Args[0], "-test.run=^TestSweepAfterKill$", "-test.v")
	child.Env = append(os.Environ(), "SKIFF_TB_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var name, dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
			name, dir = f[1], f[2]
			break
		}
	}
	if name == "" {
		child.Process.Kill()
		child.Wait()
		t.Fatal("the child test bed did not start")
	}
	child.Process.Kill() // SIGKILL: no cleanup of its own runs
	child.Wait()
	if left := leftovers(name, dir); len(left) == 0 {
		t.Fatal("a killed test bed left nothing, so this test proves nothing")
	}
	sweep()
	if left := leftovers(name, dir); len(left) > 0 {
		t.Fatalf("after the sweep:\n%s", strings.Join(left, "\n"))
	}
}
