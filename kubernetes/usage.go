package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiffhq/skiff"
)

// The CPU and memory that ps shows of pods. A cluster has them in one of
// two places: the metrics API (metrics.k8s.io, served by metrics-server;
// what `kubectl top` reads), which rbac.yaml grants; else each kubelet's
// summary (/stats/summary), which skiff reads through the API server's
// node proxy only where the cluster's admin granted `get nodes/proxy`: that
// grant is not in rbac.yaml, since it opens the whole kubelet API (its exec
// included) of every node. The metrics API has only the CPU in use now
// (cores); the kubelet has the CPU time used, as ps shows it here. Where
// neither answers, each instance says why (Instance.NoUsage) and ps says
// so, rather than showing zeros.

// usageTTL is how long figures are kept: Instances is called often (a
// run's end is polled), the figures change slowly.
const usageTTL = 10 * time.Second

// podUsage is one pod's figures.
type podUsage struct {
	cpu      time.Duration // CPU time used; 0 where only a rate is known
	cpuCores float64       // CPU in use now (the metrics API)
	memory   int64         // working set
}

// usageCache keeps the last figures per namespace (metrics API) or node
// (kubelet).
type usageCache struct {
	mu      sync.Mutex
	at      map[string]time.Time
	figures map[string]map[string]podUsage // by "ns/" or "node:" key, then "ns/pod"
	notes   map[string]string              // why a key has no figures
}

// fillUsage sets the figures of the instances of pods (same order).
func (s *Scheduler) fillUsage(ctx context.Context, pods []corev1.Pod, ins []*skiff.Instance) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for i := range pods {
		p := &pods[i]
		if ended(p) || p.Status.Phase != corev1.PodRunning {
			continue
		}
		u, note := s.podUsage(ctx, p)
		if note != "" {
			ins[i].NoUsage = note
			continue
		}
		ins[i].CPU, ins[i].CPUCores, ins[i].MemoryBytes = u.cpu, u.cpuCores, u.memory
	}
}

// podUsage is the pod's figures, or why there are none.
func (s *Scheduler) podUsage(ctx context.Context, p *corev1.Pod) (podUsage, string) {
	figures, note := s.figures(ctx, "ns/"+p.Namespace, func() (map[string]podUsage, error) { return s.metricsAPI(ctx, p.Namespace) })
	if note == "" {
		if u, ok := figures[p.Namespace+"/"+p.Name]; ok {
			return u, ""
		}
		return podUsage{}, "the metrics API has no figures of this pod yet"
	}
	if p.Spec.NodeName == "" {
		return podUsage{}, note
	}
	kfigures, knote := s.figures(ctx, "node:"+p.Spec.NodeName, func() (map[string]podUsage, error) { return s.kubeletSummary(ctx, p.Spec.NodeName) })
	if knote != "" {
		return podUsage{}, note + "; " + knote
	}
	if u, ok := kfigures[p.Namespace+"/"+p.Name]; ok {
		return u, ""
	}
	return podUsage{}, "the kubelet of " + p.Spec.NodeName + " has no figures of this pod yet"
}

// figures returns the cached figures of key, reading them with read when
// they are older than usageTTL; note is why there are none.
func (s *Scheduler) figures(ctx context.Context, key string, read func() (map[string]podUsage, error)) (map[string]podUsage, string) {
	c := &s.usage
	c.mu.Lock()
	if t, ok := c.at[key]; ok && time.Since(t) < usageTTL {
		defer c.mu.Unlock()
		return c.figures[key], c.notes[key]
	}
	c.mu.Unlock()
	got, err := read()
	note := ""
	if err != nil {
		note = err.Error()
		if ctx.Err() != nil {
			return nil, note // not kept: the next call tries again
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at, c.figures, c.notes = map[string]time.Time{}, map[string]map[string]podUsage{}, map[string]string{}
	}
	c.at[key], c.figures[key], c.notes[key] = time.Now(), got, note
	return got, note
}

// metricsAPI reads the namespace's pods' figures from metrics.k8s.io.
func (s *Scheduler) metricsAPI(ctx context.Context, ns string) (map[string]podUsage, error) {
	raw, err := s.cfg.Client.Typed.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces", ns, "pods").DoRaw(ctx)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("the cluster has no metrics API (metrics.k8s.io: metrics-server)")
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("skiff may not read the metrics API (list pods.metrics.k8s.io: see `skiff clusters:rbac`)")
	case err != nil:
		return nil, fmt.Errorf("the metrics API does not answer: %v", err)
	}
	var list struct {
		Items []struct {
			Metadata   struct{ Name, Namespace string }
			Containers []struct {
				Name  string
				Usage map[string]resource.Quantity
			}
		}
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("the metrics API's answer does not parse: %v", err)
	}
	out := map[string]podUsage{}
	for _, it := range list.Items {
		for _, c := range it.Containers {
			if c.Name != containerName {
				continue
			}
			cpu, mem := c.Usage[string(corev1.ResourceCPU)], c.Usage[string(corev1.ResourceMemory)]
			out[it.Metadata.Namespace+"/"+it.Metadata.Name] = podUsage{cpuCores: float64(cpu.MilliValue()) / 1000, memory: mem.Value()}
		}
	}
	return out, nil
}

// kubeletSummary reads the figures of the node's pods from its kubelet's
// summary, through the API server's node proxy.
func (s *Scheduler) kubeletSummary(ctx context.Context, node string) (map[string]podUsage, error) {
	raw, err := s.cfg.Client.Typed.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "stats", "summary").DoRaw(ctx)
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("skiff may not read the kubelets' figures (get nodes/proxy, which the cluster's admin may grant: see the README)")
	case err != nil:
		return nil, fmt.Errorf("the kubelet of %s does not answer: %v", node, err)
	}
	var sum struct {
		Pods []struct {
			PodRef     struct{ Name, Namespace string }
			Containers []struct {
				Name string
				CPU  *struct {
					UsageCoreNanoSeconds *int64 `json:"usageCoreNanoSeconds"`
				} `json:"cpu"`
				Memory *struct {
					WorkingSetBytes *int64 `json:"workingSetBytes"`
				} `json:"memory"`
			}
		}
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		return nil, fmt.Errorf("the kubelet's summary of %s does not parse: %v", node, err)
	}
	out := map[string]podUsage{}
	for _, p := range sum.Pods {
		for _, c := range p.Containers {
			if c.Name != containerName {
				continue
			}
			var u podUsage
			if c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
				u.cpu = time.Duration(*c.CPU.UsageCoreNanoSeconds)
			}
			if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
				u.memory = *c.Memory.WorkingSetBytes
			}
			out[p.PodRef.Namespace+"/"+p.PodRef.Name] = u
		}
	}
	return out, nil
}
