package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// Labels and annotations of the pods the Scheduler makes for instances.
const (
	LabelIndex     = "skiff.dev/index"
	LabelOneOff    = "skiff.dev/one-off"
	AnnotationSpec = "skiff.dev/spec" // the InstanceSpec, without its Env
	// AnnotationIndex numbers the pods of a Deployment or a CronJob (web.1,
	// web.2 …) for ps and the log, as the Scheduler first sees each.
	AnnotationIndex = "skiff.dev/index"
)

// PodImage is how a cluster runs an instance's image: the reference its
// nodes pull, the credentials they pull with, the image's numeric user,
// and the command and arguments of the spec's process type.
type PodImage struct {
	Ref      string
	Registry *Registry
	UID, GID *int64
	Command  []string // replaces the image's entrypoint; nil keeps it
	Args     []string // replaces the image's command; nil keeps it
}

// SchedulerConfig is what a Scheduler needs.
type SchedulerConfig struct {
	// Name is the cluster's name in skiff: instance IDs start with it
	// ("<name>/<namespace>/<pod>"), so that they name their cluster.
	Name   string
	Client *Client
	Where  Where
	// Image says how the cluster runs a spec's image (skiff's registry or
	// an external one, the process type's command).
	Image func(ctx context.Context, spec *skiff.InstanceSpec) (*PodImage, error)
	// Volume, when set, finds a volume of skiff's by id: a mount of one
	// it does not find is refused (EINVALID), and a claim requests the
	// volume's size. Without it every volume is taken to exist, of
	// ClaimSize.
	Volume func(ctx context.Context, id string) (*skiff.Volume, error)
	// Logs keeps the apps' logs: what the pods print and skiff's own lines.
	Logs *applog.Store
	Log  *slog.Logger
	// Poll is how often the pods are looked at (default 500 ms).
	Poll time.Duration
	// OnBackends, when set, is told the id of an app whose ready web pods
	// (its EndpointSlices) may have changed; Backends has them.
	OnBackends func(appID string)
	// OnCronRun, when set, is told of each cron run that ended (a Job of
	// one of the apps' CronJobs), once it has its output.
	OnCronRun func(run *CronRun)
	// Push, when set, copies a spec's image to where the cluster's nodes
	// pull it (an external registry) before Image's reference is used
	// (push.go).
	Push func(ctx context.Context, spec *skiff.InstanceSpec, progress func(string)) error
}

// Scheduler runs skiff's instances as pods of one cluster: it implements
// skiff.Scheduler. An instance is a pod of its own (restartPolicy Always,
// or Never for a OneOff one): the kubelet restarts its process, the pod
// outlives skiff, and a new Scheduler lists it again. Its ID is
// "<cluster>/<namespace>/<pod>". The Scheduler follows the pods, copying their
// output into Logs and logging their state changes there.
type Scheduler struct {
	cfg  SchedulerConfig
	stop context.CancelFunc
	wg   sync.WaitGroup // the watchers

	started time.Time

	observing sync.Mutex // one observe at a time
	mu        sync.Mutex
	seen      map[string]*podSeen // by ID
	reported  map[types.UID]bool  // the cron runs told to OnCronRun
	pushed    pushes

	usage usageCache // the pods' CPU and memory
}

type podSeen struct {
	state     skiff.InstanceState
	restarts  int32
	container string // the container id whose output is being copied
	follow    context.CancelFunc
}

// NewScheduler starts following the cluster's skiff pods.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{cfg: cfg, stop: cancel, seen: map[string]*podSeen{}, started: time.Now()}
	s.wg.Add(1)
	go s.watch(ctx)
	if cfg.OnBackends != nil {
		s.wg.Add(1)
		go s.watchEndpoints(ctx)
	}
	return s
}

// Close stops following the pods; they keep running.
func (s *Scheduler) Close() {
	s.stop()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.seen {
		if p.follow != nil {
			p.follow()
		}
	}
}

// Namespace is where an app's objects live on this cluster.
func (s *Scheduler) Namespace(appID string) string {
	if s.cfg.Where.Namespace != "" {
		return s.cfg.Where.Namespace
	}
	return "skiff-" + appID
}

func (s *Scheduler) release(ctx context.Context, spec *skiff.InstanceSpec) (*Release, *PodImage, error) {
	if err := skiff.ValidateProcessType(spec.ProcessType); err != nil {
		return nil, nil, err
	}
	if err := s.PushImage(ctx, spec, func(line string) { s.AppLog(spec.AppID, spec.Name(), line) }); err != nil {
		return nil, nil, err
	}
	img, err := s.cfg.Image(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	r := &Release{Namespace: s.Namespace(spec.AppID), Shared: s.cfg.Where.Namespace != "", AppID: spec.AppID,
		App: spec.AppName, Version: max(spec.Release, 1), Image: img.Ref, UID: img.UID, GID: img.GID,
		Config: spec.Env, Registry: img.Registry, StorageClass: s.cfg.Where.StorageClass}
	if r.OneOffMounts, err = s.mounts(ctx, spec.Mounts); err != nil {
		return nil, nil, err
	}
	return r, img, nil
}

// Start makes the instance's pod (and, the first time, the app's namespace,
// service account and pull secret).
func (s *Scheduler) Start(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error) {
	if spec.Index < 1 {
		return nil, skiff.Errorf(skiff.EINVALID, "instance %s: the index starts at 1", spec.Name())
	}
	if spec.OneOff && spec.CronJob != "" {
		return s.startCronRun(ctx, spec)
	}
	r, img, err := s.release(ctx, spec)
	if err != nil {
		return nil, err
	}
	pod, err := s.pod(ctx, r, img, spec, fmt.Sprintf("%s-%d-%s", spec.ProcessType, spec.Index, suffix()))
	if err != nil {
		return nil, err
	}
	id := s.id(pod.Namespace, pod.Name)
	s.AppLog(spec.AppID, spec.Name(), "Starting process"+commandNote(spec.Command))
	return &skiff.Instance{ID: id, Spec: *spec, State: skiff.InstanceStarting, CreatedAt: pod.CreationTimestamp.Time}, nil
}

func commandNote(cmd []string) string {
	if len(cmd) == 0 {
		return ""
	}
	return " with command `" + strings.Join(cmd, " ") + "`"
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pod applies what the app needs and creates one pod for spec; its config
// is an immutable Secret that the pod owns (so it goes with the pod).
func (s *Scheduler) pod(ctx context.Context, r *Release, img *PodImage, spec *skiff.InstanceSpec, name string) (*corev1.Pod, error) {
	return s.podWith(ctx, r, img, spec, name, nil, nil)
}

// podWith is pod with a last change to the pod's spec and labels.
func (s *Scheduler) podWith(ctx context.Context, r *Release, img *PodImage, spec *skiff.InstanceSpec, name string,
	change func(*corev1.PodSpec), label func(map[string]string)) (*corev1.Pod, error) {
	tmpl, err := s.template(ctx, r, img, spec, name, change, label)
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Name, pod.Namespace = name, r.Namespace
	created, err := s.cfg.Client.Typed.CoreV1().Pods(r.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name(), err)
	}
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: created.Name, UID: created.UID}
	if err := s.envSecret(ctx, r, spec, name, tmpl.Labels, owner); err != nil {
		_ = s.cfg.Client.Typed.CoreV1().Pods(r.Namespace).Delete(context.WithoutCancel(ctx), created.Name, metav1.DeleteOptions{})
		return nil, err
	}
	return created, nil
}

// template applies what the app needs (namespace, service account, pull
// secret) and returns the pod template of one instance of spec, named
// name: its environment comes from the Secret envSecret makes.
func (s *Scheduler) template(ctx context.Context, r *Release, img *PodImage, spec *skiff.InstanceSpec, name string,
	change func(*corev1.PodSpec), label func(map[string]string)) (*corev1.PodTemplateSpec, error) {
	m, err := Render(r)
	if err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "%v", err)
	}
	base := slices.DeleteFunc(m.Objects(), func(o Object) bool { return o == Object(m.Config) })
	if err := s.checkStorageClasses(ctx, m); err != nil {
		return nil, err
	}
	if err := s.cfg.Client.ApplyAll(ctx, base); err != nil { // everything but the release's config
		return nil, fmt.Errorf("start %s: %w", spec.Name(), err)
	}
	if err := s.cfg.Client.EnsureClaims(ctx, m); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name(), err)
	}
	if err := s.checkClaims(ctx, m); err != nil {
		return nil, err
	}
	p := Process{Type: spec.ProcessType, Command: img.Command, Limits: spec.Limits, Mounts: r.OneOffMounts}
	podSpec, err := PodSpec(r, p)
	if err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "%v", err)
	}
	c := &podSpec.Containers[0]
	c.Args = img.Args
	c.Env = append(c.Env, corev1.EnvVar{Name: "DYNO", Value: spec.Name()}, corev1.EnvVar{Name: "SKIFF_PROCESS", Value: spec.Name()})
	c.Lifecycle = nil // a stopping instance gets SIGTERM at once, as on this machine
	c.EnvFrom[0].SecretRef.Name = name + "-env"
	if spec.ProcessType == "web" {
		// Ready is "accepts connections on its port", for every scheduler.
		c.StartupProbe = nil
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}
	}
	podSpec.TopologySpreadConstraints = nil
	podSpec.RestartPolicy = corev1.RestartPolicyAlways
	if spec.OneOff {
		podSpec.RestartPolicy = corev1.RestartPolicyNever
	}
	grace := int64(30)
	podSpec.TerminationGracePeriodSeconds = &grace
	if change != nil {
		change(&podSpec)
	}
	stored := *spec
	stored.Env = nil
	specJSON, _ := json.Marshal(stored)
	lbl := Labels(r.AppID, r.App)
	lbl[LabelProcess], lbl[LabelRelease], lbl[LabelIndex] = spec.ProcessType, strconv.Itoa(spec.Release), strconv.Itoa(spec.Index)
	if spec.OneOff {
		lbl[LabelOneOff] = "true"
	}
	maps.Copy(lbl, mountLabels(p.Mounts))
	if label != nil {
		label(lbl)
	}
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: lbl, Annotations: map[string]string{AnnotationSpec: string(specJSON)}},
		Spec:       podSpec,
	}, nil
}

// envSecret makes the immutable Secret of an instance's environment
// (<name>-env), owned by what runs it.
func (s *Scheduler) envSecret(ctx context.Context, r *Release, spec *skiff.InstanceSpec, name string, lbl map[string]string, owner metav1.OwnerReference) error {
	data := map[string][]byte{}
	for k, v := range spec.Env {
		data[k] = []byte(v)
	}
	yes := true
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-env", Namespace: r.Namespace, Labels: lbl,
		OwnerReferences: []metav1.OwnerReference{owner}}, Immutable: &yes, Data: data}
	if _, err := s.cfg.Client.Typed.CoreV1().Secrets(r.Namespace).Create(ctx, secret, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("start %s: %w", spec.Name(), err)
	}
	return nil
}

// id is the instance ID of a pod.
func (s *Scheduler) id(ns, pod string) string { return s.cfg.Name + "/" + ns + "/" + pod }

// split parses an instance ID of this cluster.
func (s *Scheduler) split(id string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(id, s.cfg.Name+"/")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, "/")
	return ns, name, ok && ns != "" && name != "" && !strings.Contains(name, "/")
}

func (s *Scheduler) get(ctx context.Context, id string) (*corev1.Pod, error) {
	ns, name, ok := s.split(id)
	if !ok {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "no instance %s", id)
	}
	p, err := s.cfg.Client.Typed.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if IsNotFound(err) || (err == nil && p.Labels[LabelManagedBy] != ManagedBy) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "no instance %s", id)
	}
	return p, err
}

// WaitReady returns when the pod is Ready; it fails when the process
// exits first (EUNAVAILABLE), the pod goes, or ctx ends.
func (s *Scheduler) WaitReady(ctx context.Context, id string) error {
	for {
		p, err := s.get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		s.observe(ctx, p)
		in := s.instance(p)
		switch {
		case p.DeletionTimestamp != nil:
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s is stopping", in.Spec.Name())
		case in.Restarts > 0 || in.State == skiff.InstanceExited || in.State == skiff.InstanceCrashed:
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s %s before it was ready", in.Spec.Name(), orDefault(in.LastExit, "exited"))
		case in.State == skiff.InstanceUp && podReady(p):
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func podReady(p *corev1.Pod) bool {
	if p.Labels[LabelProcess] != "web" {
		return true // no port to check
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop deletes the pod with grace (the kubelet sends SIGTERM, then
// SIGKILL) and returns when it is gone.
func (s *Scheduler) Stop(ctx context.Context, id string, grace time.Duration) error {
	p, err := s.get(ctx, id)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	if grace <= 0 {
		grace = 30 * time.Second
	}
	secs := int64((grace + time.Second - 1) / time.Second)
	uid := p.UID
	s.observe(ctx, p)
	in := s.instance(p)
	s.AppLog(in.Spec.AppID, in.Spec.Name(), "Stopping process with SIGTERM")
	s.forget(id) // the watcher no longer reports this pod's end: Stop does
	err = s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &secs, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	// Watch the pod go: the kubelet reports how the process ended just
	// before the pod is removed.
	w, err := s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + p.Name, ResourceVersion: p.ResourceVersion})
	if err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	defer w.Stop()
	exit := ""
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				if _, err := s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); !IsNotFound(err) {
					return s.Stop(ctx, id, grace) // the watch ended early: again
				}
				ev.Type = watch.Deleted
			}
			if got, isPod := ev.Object.(*corev1.Pod); isPod {
				for _, cs := range got.Status.ContainerStatuses {
					if t := cs.State.Terminated; t != nil {
						exit = exitText(t)
					}
				}
			}
			if ev.Type == watch.Deleted {
				if exit != "" {
					s.AppLog(in.Spec.AppID, in.Spec.Name(), "Process "+exit)
				}
				return nil
			}
		}
	}
}

// list lists skiff's pods of the app ("" for every app): instances it
// started, and those of the app's Deployments and CronJobs.
func (s *Scheduler) list(ctx context.Context, appID string) ([]corev1.Pod, error) {
	set := labels.Set{LabelManagedBy: ManagedBy}
	if appID != "" {
		set[LabelAppID] = appID
	}
	sel := labels.SelectorFromSet(set).String()
	ns := ""
	if s.cfg.Where.Namespace != "" {
		ns = s.cfg.Where.Namespace
	} else if appID != "" {
		ns = s.Namespace(appID)
	}
	pods, err := s.cfg.Client.Typed.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return pods.Items, nil
}

// Instances lists the app's instance pods, sorted by app, process type and
// index.
func (s *Scheduler) Instances(ctx context.Context, appID string) ([]*skiff.Instance, error) {
	pods, err := s.list(ctx, appID)
	if err != nil {
		return nil, err
	}
	env := s.envs(ctx, appID)
	out := make([]*skiff.Instance, 0, len(pods))
	listed := pods[:0:0]
	for i := range pods {
		if ended(&pods[i]) && pods[i].Labels[LabelCronJob] != "" && pods[i].Annotations[AnnotationInstantiate] == "" {
			continue // a scheduled cron run's pod the cluster keeps: cron:history has it
		}
		in := s.instance(&pods[i])
		in.Spec.Env = env[pods[i].Namespace+"/"+pods[i].Name+"-env"]
		out = append(out, in)
		listed = append(listed, pods[i])
	}
	s.fillUsage(ctx, listed, out)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Spec, out[j].Spec
		if a.AppName != b.AppName {
			return a.AppName < b.AppName
		}
		if a.ProcessType != b.ProcessType {
			return a.ProcessType < b.ProcessType
		}
		return a.Index < b.Index
	})
	return out, nil
}

// envs reads the instances' environments from their Secrets, by
// "<namespace>/<secret>".
func (s *Scheduler) envs(ctx context.Context, appID string) map[string]map[string]string {
	set := labels.Set{LabelManagedBy: ManagedBy}
	if appID != "" {
		set[LabelAppID] = appID
	}
	ns := s.cfg.Where.Namespace
	if ns == "" && appID != "" {
		ns = s.Namespace(appID)
	}
	out := map[string]map[string]string{}
	secrets, err := s.cfg.Client.Typed.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String() + "," + LabelIndex})
	if err != nil {
		return out
	}
	for _, sec := range secrets.Items {
		env := map[string]string{}
		for k, v := range sec.Data {
			env[k] = string(v)
		}
		out[sec.Namespace+"/"+sec.Name] = env
	}
	return out
}

// instance reads an Instance from its pod.
func (s *Scheduler) instance(p *corev1.Pod) *skiff.Instance {
	in := &skiff.Instance{ID: s.id(p.Namespace, p.Name), State: skiff.InstanceStarting, Node: p.Spec.NodeName,
		CreatedAt: p.CreationTimestamp.Time}
	_, started := p.Labels[LabelIndex]
	if started {
		_ = json.Unmarshal([]byte(p.Annotations[AnnotationSpec]), &in.Spec)
	} else { // a Deployment's or a CronJob's
		in.Spec = skiff.InstanceSpec{AppID: p.Labels[LabelAppID], AppName: p.Labels[LabelApp], ProcessType: p.Labels[LabelProcess],
			OneOff: p.Spec.RestartPolicy == corev1.RestartPolicyNever}
		in.Spec.Release, _ = strconv.Atoi(p.Labels[LabelRelease])
		in.Spec.Index, _ = strconv.Atoi(p.Annotations[AnnotationIndex])
		if len(p.Spec.Containers) > 0 {
			c := p.Spec.Containers[0]
			if _, digest, ok := strings.Cut(c.Image, "@"); ok {
				in.Spec.Image = digest
			}
			in.Spec.Limits.MemoryBytes = c.Resources.Limits.Memory().Value()
			in.Spec.Limits.CPU = float64(c.Resources.Limits.Cpu().MilliValue()) / 1000
			if j := p.Labels[LabelCronJob]; j != "" {
				in.Spec.Command = c.Args
			}
		}
	}
	if p.Status.PodIP != "" {
		in.Addr = p.Status.PodIP + ":" + strconv.Itoa(skiff.DefaultPort)
	}
	for _, cs := range p.Status.ContainerStatuses {
		in.Restarts = int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil {
			in.LastExit, in.LastExitAt = exitText(t), t.FinishedAt.Time
		}
		switch {
		case cs.State.Running != nil:
			in.State, in.StartedAt = skiff.InstanceUp, cs.State.Running.StartedAt.Time
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			in.LastExit, in.LastExitAt = exitText(t), t.FinishedAt.Time
			in.State = skiff.InstanceCrashed
			if in.Spec.OneOff {
				in.State, in.ExitCode = skiff.InstanceExited, int(t.ExitCode)
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			in.State = skiff.InstanceCrashed
		}
	}
	if !started && in.State == skiff.InstanceUp && !podReady(p) {
		in.State = skiff.InstanceStarting // a web pod takes traffic once ready
	}
	if p.DeletionTimestamp != nil {
		in.State = skiff.InstanceStopping
	}
	if lim := p.Spec.Containers[0].Resources.Limits.Memory(); lim != nil {
		in.MemoryLimit = lim.Value()
	}
	return in
}

func ended(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func exitText(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason == "OOMKilled":
		return "killed: out of memory"
	case t.Signal != 0:
		return fmt.Sprintf("killed by signal %d", t.Signal)
	}
	return fmt.Sprintf("exited with status %d", t.ExitCode)
}

// RemoveApp deletes the app's pods and everything else skiff made for it
// on the cluster, and its log.
func (s *Scheduler) RemoveApp(ctx context.Context, appID string) error {
	pods, err := s.list(ctx, appID)
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, p := range pods {
		err := s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !IsNotFound(err) {
			return fmt.Errorf("remove app: %w", err)
		}
		s.forget(s.id(p.Namespace, p.Name))
	}
	if err := s.cfg.Client.RemoveApp(ctx, s.Namespace(appID), appID, s.cfg.Where.Namespace != ""); err != nil {
		return err
	}
	return s.cfg.Logs.Remove(appID)
}

// AppLog records a platform line in the app's log.
func (s *Scheduler) AppLog(appID, process, text string) {
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		s.cfg.Logs.Write(appID, skiff.LogLine{Time: time.Now(), Source: "skiff", Process: process, Text: applog.CleanText([]byte(line))})
	}
}

// Logs reads the app's log: the pods' output as the Scheduler copied it,
// and the platform's lines.
func (s *Scheduler) Logs(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	return s.cfg.Logs.Query(ctx, q, fn)
}

func (s *Scheduler) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.seen[id]; p != nil && p.follow != nil {
		p.follow()
	}
	delete(s.seen, id)
}

var _ skiff.Scheduler = (*Scheduler)(nil)
