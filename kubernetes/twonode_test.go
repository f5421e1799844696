package kubernetes

// Two nodes: a release spreads over both, and draining one moves its pods
// to the other while a client that follows the Service's EndpointSlices
// (as skiff's router does) sees no failed request.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// readyEndpoints lists the ready addresses of the app's web Service.
func readyEndpoints(ctx context.Context, c *Client, ns string) ([]string, error) {
	slices, err := c.Typed.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready && len(e.Addresses) > 0 {
				out = append(out, e.Addresses[0])
			}
		}
	}
	return out, nil
}

// podsByNode counts the app's running, ready pods per node.
func podsByNode(t *testing.T, c *Client, ns, appID string) map[string]int {
	t.Helper()
	pods, err := c.Typed.CoreV1().Pods(ns).List(context.Background(), listApp(appID))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
				out[p.Spec.NodeName]++
			}
		}
	}
	return out
}

func TestSpreadAndDrainUnderProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes test bed needs root (sudo make test runs it)")
	}
	nb, err := startNode(t, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := nb.release(1)
	r.Namespace = "skiff-drain"
	r.Processes[0].Replicas = 4
	if out, err := nb.rollout(t, r); err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	n1, n2 := nb.NodeNames[0], nb.NodeNames[1]
	if got := podsByNode(t, nb.client, r.Namespace, r.AppID); got[n1] != 2 || got[n2] != 2 {
		t.Fatalf("4 pods spread as %v, want 2 and 2", got)
	}

	// The prober: the ready endpoints, refreshed every 200 ms, one request
	// after another across them.
	ctx, stop := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		addrs    []string
		ok, fail atomic.Int64
		failures []string
		wg       sync.WaitGroup
	)
	refresh := func() {
		if a, err := readyEndpoints(ctx, nb.client, r.Namespace); err == nil && len(a) > 0 {
			mu.Lock()
			addrs = a
			mu.Unlock()
		}
	}
	refresh()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			refresh()
			time.Sleep(200 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: nb.DialContext, DisableKeepAlives: true}}
		for i := 0; ctx.Err() == nil; i++ {
			mu.Lock()
			addr := addrs[i%len(addrs)]
			mu.Unlock()
			resp, err := client.Get("http://" + addr + ":5000/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(b), "hi") {
					err = fmt.Errorf("%s %q", resp.Status, b)
				}
			}
			if err != nil {
				fail.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v", addr, err))
				mu.Unlock()
			} else {
				ok.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Drain node 2 as kubectl drain does: cordon, then evict each pod
	// through the Eviction API, which the budget may refuse for a while.
	admin := nb.client
	bg := context.Background()
	if _, err := admin.Typed.CoreV1().Nodes().Patch(bg, n2, types.StrategicMergePatchType,
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods, err := admin.Typed.CoreV1().Pods(r.Namespace).List(bg, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n2})
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				left++
				continue
			}
			left++
			err := admin.Typed.PolicyV1().Evictions(p.Namespace).Evict(bg, &policyv1.Eviction{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
			if err != nil && !apierrors.IsTooManyRequests(err) && !apierrors.IsNotFound(err) {
				t.Fatalf("evict %s: %v", p.Name, err)
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s still has %d pods", n2, left)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := waitUntil(3*time.Minute, func() bool { return podsByNode(t, admin, r.Namespace, r.AppID)[n1] == 4 }); err != nil {
		t.Fatalf("after the drain: %v, want 4 ready on %s", podsByNode(t, admin, r.Namespace, r.AppID), n1)
	}
	t.Logf("drained %s in %.1fs", n2, time.Since(t0).Seconds())
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	if fail.Load() > 0 || ok.Load() < 50 {
		t.Fatalf("the prober: %d answers, %d failures:\n%s", ok.Load(), fail.Load(), strings.Join(failures, "\n"))
	}
	t.Logf("the prober: %d answers, 0 failures", ok.Load())
}

func waitUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil
}
