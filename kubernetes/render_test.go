package kubernetes

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestRenderDefaults(t *testing.T) {
	r := &Release{Namespace: "skiff-a", AppID: "id", App: "a", Version: 3, Image: "r/a@sha256:00",
		Processes: []Process{{Type: "web", Replicas: 1}, {Type: "worker", Replicas: 0}}}
	m, err := Render(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Budgets) != 0 || len(m.Services) != 1 || m.PullSecret != nil || m.Namespace == nil {
		t.Fatalf("objects: %d budgets, %d services, pull secret %v", len(m.Budgets), len(m.Services), m.PullSecret != nil)
	}
	web := m.Deployments[0].Spec.Template.Spec.Containers[0]
	if web.StartupProbe.TCPSocket == nil || web.StartupProbe.HTTPGet != nil {
		t.Errorf("without a check path the probe should only connect: %+v", web.StartupProbe)
	}
	if got := web.Resources.Limits.Memory().Value(); got != skiff.DefaultLimits.MemoryBytes {
		t.Errorf("default memory %d", got)
	}
	if got := web.Resources.Requests.Cpu().MilliValue(); got != 100 {
		t.Errorf("cpu request %dm", got)
	}
	worker := m.Deployments[1]
	if *worker.Spec.Replicas != 0 || worker.Spec.Template.Spec.Containers[0].Ports != nil {
		t.Errorf("worker: %+v", worker.Spec)
	}
	names := []string{}
	for _, o := range m.Objects() {
		names = append(names, o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName())
	}
	if got := strings.Join(names, " "); got != "Namespace/skiff-a ServiceAccount/skiff-app Secret/config-v3 Deployment/web Deployment/worker Service/web" {
		t.Errorf("objects in order: %s", got)
	}
}

func TestRenderRefuses(t *testing.T) {
	good := func() *Release {
		return &Release{Namespace: "n", AppID: "id", App: "a", Version: 1, Image: "i@sha256:00",
			Processes: []Process{{Type: "web", Replicas: 1}}}
	}
	for name, mutate := range map[string]func(*Release){
		"no image":      func(r *Release) { r.Image = "" },
		"no version":    func(r *Release) { r.Version = 0 },
		"bad type":      func(r *Release) { r.Processes[0].Type = "Web_1" },
		"bad key":       func(r *Release) { r.Config = map[string]string{"lower": "x"} },
		"too many":      func(r *Release) { r.Processes[0].Replicas = skiff.MaxScale + 1 },
		"negative":      func(r *Release) { r.Processes[0].Replicas = -1 },
		"tiny cpu":      func(r *Release) { r.Processes[0].Limits.CPU = 0.001 },
		"registry name": func(r *Release) { r.Registry = &Registry{} },
	} {
		r := good()
		mutate(r)
		if _, err := Render(r); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

func TestSharedNames(t *testing.T) {
	r := &Release{Shared: true, App: strings.Repeat("x", 63)}
	a, b := r.Name("web"), r.Name("worker")
	if len(a) != 63 || len(b) != 63 || a == b {
		t.Fatalf("long names: %q %q", a, b)
	}
	if c := r.nameWithin("cron-abcdefgh23", cronJobNameMax); len(c) != cronJobNameMax || c == a {
		t.Fatalf("a long CronJob name: %q", c)
	}
	if got := (&Release{Shared: true, App: "shop"}).Name("web"); got != "shop-web" {
		t.Fatalf("shared name %q", got)
	}
	if got := (&Release{App: "shop"}).Name("web"); got != "web" {
		t.Fatalf("own-namespace name %q", got)
	}
}
