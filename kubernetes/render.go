package kubernetes

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffhq/skiff"
)

// Labels skiff puts on everything it applies. It lists, changes and deletes
// only objects that carry LabelManagedBy=skiff and the app's LabelAppID, so
// it never touches anything else in a cluster.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "skiff"
	LabelAppID     = "skiff.dev/app-id"
	LabelApp       = "skiff.dev/app"
	LabelProcess   = "skiff.dev/process"
	LabelRelease   = "skiff.dev/release"
	LabelCronJob   = "skiff.dev/cron-job"
	// AnnotationRestartedAt on a Deployment's pods replaces them when it
	// changes (ps:restart).
	AnnotationRestartedAt = "skiff.dev/restarted-at"
	// FieldManager is skiff's name in server-side apply.
	FieldManager = "skiff"
)

// Names of the per-app objects (the Deployment and the Service of a process
// type are named after it).
const (
	ServiceAccountName = "skiff-app"
	PullSecretName     = "skiff-registry"
	containerName      = "app"
)

// configName names the Secret of a release's config vars.
func configName(version int) string { return "config-v" + strconv.Itoa(version) }

// Name is the name of one of the app's objects: as it is in a namespace of
// the app's own, prefixed with the app's name in a shared one (shortened
// with a hash where that would pass the 63 characters of a DNS label).
func (r *Release) Name(base string) string { return r.nameWithin(base, 63) }

// cronJobNameMax is the longest name a CronJob may have: its controller
// appends a time to it for each Job's name.
const cronJobNameMax = 52

// nameWithin is Name for a kind whose names have at most limit bytes.
func (r *Release) nameWithin(base string, limit int) string {
	n := base
	if r.Shared {
		n = r.App + "-" + base
	}
	if len(n) > limit {
		sum := sha256.Sum256([]byte(n))
		n = n[:limit-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return n
}

// Release is what a release becomes on a cluster: the input of Render.
type Release struct {
	Namespace string
	// Shared is set when Namespace holds other apps too (a cluster added
	// with --namespace): skiff does not own the namespace, and the app's
	// objects are named <app>-….
	Shared  bool
	AppID   string
	App     string
	Version int
	// Image is a reference by digest (host/repo@sha256:…) that the
	// cluster's nodes can pull.
	Image string
	// UID and GID, when set, are the image's numeric user, given to the
	// pod so that Kubernetes can check it is not root.
	UID, GID  *int64
	Config    map[string]string
	Processes []Process
	// Cron are the release's cron jobs, each a CronJob.
	Cron []CronJob
	// OneOffMounts are the volumes of a one-off run of the release (their
	// claims are made with the rest).
	OneOffMounts []Mount
	// StorageClass is the class of claims made now; "": the default.
	StorageClass string
	Check        Check
	// Registry holds the credentials the nodes pull Image with; nil when
	// the image is public.
	Registry *Registry
	// Ingress, when set, exposes the web process through the cluster's
	// ingress controller (ingress.go).
	Ingress *Ingress
}

// Process is one process type of the release.
type Process struct {
	Type     string
	Command  []string // empty: the image's own entrypoint
	Args     []string // empty: the image's own command
	Replicas int
	Limits   skiff.Limits
	// RestartedAt, when set, goes on the pods' template: a new value
	// replaces them all (ps:restart).
	RestartedAt string
	// Mounts are the app's volumes its pods mount (see volumes.go).
	Mounts []Mount
}

// CronJob is one scheduled command of the release.
type CronJob struct {
	ID       string // skiff's job id: the CronJob is cron-<id>
	Schedule string
	TimeZone string // "" for UTC
	Command  []string
	Args     []string
	Limits   skiff.Limits
	Suspend  bool
	Timeout  time.Duration // a run's deadline; 0 for an hour
	Mounts   []Mount
}

// Check is the web process's health check, as for the local scheduler.
type Check struct {
	Path         string        // HTTP GET path; "" only checks that the port accepts connections
	Timeout      time.Duration // per attempt
	Deadline     time.Duration // for the first success after a start
	WaitToRetire time.Duration // in-flight requests' time to finish on a stop
}

// Registry is where a cluster pulls an app's images, with credentials.
type Registry struct {
	Server   string // host[:port]
	Username string
	Password string
}

// Defaults where a Check leaves a field zero.
const (
	defaultTimeout      = 5 * time.Second
	defaultDeadline     = 60 * time.Second
	defaultWaitToRetire = 30 * time.Second
	// drainDelay is how long a stopping pod keeps serving before it gets
	// SIGTERM: the time for routers (skiff's, kube-proxy, an Ingress) to
	// see it leave the EndpointSlice.
	drainDelay = 5 * time.Second
	// cpuRequestShare is the part of a CPU limit a pod requests: what it
	// is guaranteed, not its cap (a limit of 1 CPU asks 100m of a node).
	cpuRequestShare = 10
)

// Manifest is every object of one release, typed.
type Manifest struct {
	Namespace      *corev1.Namespace
	ServiceAccount *corev1.ServiceAccount
	PullSecret     *corev1.Secret // nil without a Registry
	Config         *corev1.Secret
	Deployments    []*appsv1.Deployment
	Services       []*corev1.Service
	Budgets        []*policyv1.PodDisruptionBudget
	CronJobs       []*batchv1.CronJob
	Ingresses      []*networkingv1.Ingress
	// Claims are the app's volumes: not among Objects, since a claim is
	// made once and never changed (EnsureClaims), nor pruned.
	Claims []*corev1.PersistentVolumeClaim
}

// Objects lists the manifest's objects in the order they are applied: what
// a pod needs exists before the Deployment that makes it.
func (m *Manifest) Objects() []Object {
	var out []Object
	if m.Namespace != nil {
		out = append(out, m.Namespace)
	}
	out = append(out, m.ServiceAccount)
	if m.PullSecret != nil {
		out = append(out, m.PullSecret)
	}
	out = append(out, m.Config)
	for _, d := range m.Deployments {
		out = append(out, d)
	}
	for _, s := range m.Services {
		out = append(out, s)
	}
	for _, b := range m.Budgets {
		out = append(out, b)
	}
	for _, in := range m.Ingresses {
		out = append(out, in)
	}
	for _, c := range m.CronJobs {
		out = append(out, c)
	}
	return out
}

// Staged splits Objects in two: what is applied before the rollout, and
// what once the rollout is done. The CronJobs wait, so that a release that
// does not roll out never runs a job (the previous release's keep their
// schedule, as a local release that fails never becomes current): a Job
// of a failed release's image would stay failing to pull, and the
// CronJobs' concurrencyPolicy Forbid would hold every later run behind it.
func (m *Manifest) Staged() (rollout, after []Object) {
	for _, o := range m.Objects() {
		if _, cron := o.(*batchv1.CronJob); cron {
			after = append(after, o)
		} else {
			rollout = append(rollout, o)
		}
	}
	return rollout, after
}

// Labels are the labels of every object of the app.
func Labels(appID, app string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelAppID: appID, LabelApp: app}
}

// Render turns a release into its manifest. It checks what the cluster
// would check later, so a bad release fails before anything is applied.
func Render(r *Release) (*Manifest, error) {
	if r.Namespace == "" || r.AppID == "" || r.App == "" || r.Version < 1 || r.Image == "" {
		return nil, fmt.Errorf("render: a release needs a namespace, an app, a version and an image")
	}
	base := Labels(r.AppID, r.App)
	meta := func(name string, extra map[string]string) metav1.ObjectMeta {
		l := maps.Clone(base)
		maps.Copy(l, extra)
		return metav1.ObjectMeta{Name: name, Namespace: r.Namespace, Labels: l}
	}
	no := false
	m := &Manifest{}

	nsLabels := maps.Clone(base)
	// Pods of a skiff app meet the restricted Pod Security Standard.
	nsLabels["pod-security.kubernetes.io/enforce"] = "restricted"
	if !r.Shared {
		m.Namespace = &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: r.Namespace, Labels: nsLabels},
		}
	}
	m.ServiceAccount = &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   meta(r.Name(ServiceAccountName), nil),
		AutomountServiceAccountToken: &no,
	}
	if r.Registry != nil {
		auth, err := dockerConfig(r.Registry)
		if err != nil {
			return nil, err
		}
		m.PullSecret = &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: meta(r.Name(PullSecretName), nil),
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: auth},
		}
	}
	yes := true
	data := make(map[string][]byte, len(r.Config))
	for k, v := range r.Config {
		if err := skiff.ValidateConfigKey(k); err != nil {
			return nil, err
		}
		data[k] = []byte(v)
	}
	release := map[string]string{LabelRelease: strconv.Itoa(r.Version)}
	m.Config = &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(r.Name(configName(r.Version)), release),
		Type:       corev1.SecretTypeOpaque,
		Immutable:  &yes,
		Data:       data,
	}

	if err := validMounts(r.allMounts()); err != nil {
		return nil, err
	}
	m.Claims = claims(r, meta)

	procs := slices.Clone(r.Processes)
	slices.SortFunc(procs, func(a, b Process) int { return cmp.Compare(a.Type, b.Type) })
	for _, p := range procs {
		if err := skiff.ValidateProcessType(p.Type); err != nil {
			return nil, err
		}
		if p.Replicas < 0 || p.Replicas > skiff.MaxScale {
			return nil, fmt.Errorf("render: %s=%d is outside 0..%d", p.Type, p.Replicas, skiff.MaxScale)
		}
		d, err := deployment(r, p, meta)
		if err != nil {
			return nil, err
		}
		m.Deployments = append(m.Deployments, d)
		if p.Type == "web" {
			m.Services = append(m.Services, &corev1.Service{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: meta(r.Name(p.Type), map[string]string{LabelProcess: p.Type}),
				Spec: corev1.ServiceSpec{
					Type:     corev1.ServiceTypeClusterIP,
					Selector: selector(r, p.Type),
					Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
						TargetPort: intstr.FromString("http")}},
				},
			})
		}
		if p.Replicas >= 2 {
			one := intstr.FromInt32(1)
			m.Budgets = append(m.Budgets, &policyv1.PodDisruptionBudget{
				TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
				ObjectMeta: meta(r.Name(p.Type), map[string]string{LabelProcess: p.Type}),
				Spec: policyv1.PodDisruptionBudgetSpec{
					MaxUnavailable: &one,
					Selector:       &metav1.LabelSelector{MatchLabels: selector(r, p.Type)},
				},
			})
		}
	}
	in, err := ingress(r, meta)
	if err != nil {
		return nil, err
	}
	if in != nil {
		m.Ingresses = append(m.Ingresses, in)
	}
	for _, j := range r.Cron {
		cj, err := cronJob(r, j, meta)
		if err != nil {
			return nil, err
		}
		m.CronJobs = append(m.CronJobs, cj)
	}
	return m, nil
}

// cronJob is the CronJob of one of the release's jobs: never two runs at
// once, one run caught up when its time was missed (within a day), each
// run a pod that is not retried and ends at the job's timeout.
func cronJob(r *Release, j CronJob, meta func(string, map[string]string) metav1.ObjectMeta) (*batchv1.CronJob, error) {
	if !skiff.ValidCronID(j.ID) {
		return nil, fmt.Errorf("render: cron job id %q", j.ID)
	}
	spec, err := PodSpec(r, Process{Type: skiff.OneOffCron, Command: j.Command, Args: j.Args, Limits: j.Limits, Mounts: j.Mounts})
	if err != nil {
		return nil, err
	}
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.TopologySpreadConstraints = nil
	c := &spec.Containers[0]
	c.Lifecycle = nil
	c.Env = append(c.Env, podNameEnv("DYNO"), podNameEnv("SKIFF_PROCESS"))
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	zero := int32(0)
	history := int32(3)
	deadline := int64(timeout.Seconds())
	catchUp := int64(24 * 3600)
	labels := map[string]string{LabelProcess: skiff.OneOffCron, LabelCronJob: j.ID, LabelRelease: strconv.Itoa(r.Version)}
	maps.Copy(labels, mountLabels(j.Mounts))
	om := meta(r.nameWithin("cron-"+j.ID, cronJobNameMax), labels)
	cj := &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: om,
		Spec: batchv1.CronJobSpec{
			Schedule:                   j.Schedule,
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    &catchUp,
			Suspend:                    &j.Suspend,
			SuccessfulJobsHistoryLimit: &history,
			FailedJobsHistoryLimit:     &history,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: om.Labels},
				Spec: batchv1.JobSpec{BackoffLimit: &zero, ActiveDeadlineSeconds: &deadline,
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: om.Labels}, Spec: spec}},
			},
		},
	}
	if j.TimeZone != "" {
		cj.Spec.TimeZone = &j.TimeZone
	}
	return cj, nil
}

// podNameEnv is an environment variable holding the pod's name.
func podNameEnv(name string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}
}

// selector picks the pods of one process type of the app, whatever their
// release.
func selector(r *Release, process string) map[string]string {
	return map[string]string{LabelAppID: r.AppID, LabelProcess: process}
}

// PodSpec is the pod of process p of the release, as its Deployment
// makes it and as a one-off runs it.
func PodSpec(r *Release, p Process) (corev1.PodSpec, error) {
	check := r.Check
	if check.Timeout <= 0 {
		check.Timeout = defaultTimeout
	}
	if check.Deadline <= 0 {
		check.Deadline = defaultDeadline
	}
	if check.WaitToRetire <= 0 {
		check.WaitToRetire = defaultWaitToRetire
	}
	limits := p.Limits
	if limits.MemoryBytes <= 0 {
		limits.MemoryBytes = skiff.DefaultLimits.MemoryBytes
	}
	if limits.CPU <= 0 {
		limits.CPU = skiff.DefaultLimits.CPU
	}
	milli := int64(limits.CPU * 1000)
	if milli < 10 {
		return corev1.PodSpec{}, fmt.Errorf("render: a CPU limit of %g is below the 0.01 Kubernetes can grant", limits.CPU)
	}
	no, yes := false, true
	grace := int64((drainDelay + check.WaitToRetire).Seconds())

	env := []corev1.EnvVar{
		{Name: "PORT", Value: strconv.Itoa(skiff.DefaultPort)},
		{Name: "SKIFF_PROCESS_TYPE", Value: p.Type},
		{Name: "SKIFF_RELEASE", Value: "v" + strconv.Itoa(r.Version)},
	}
	c := corev1.Container{
		Name:    containerName,
		Image:   r.Image,
		Command: p.Command,
		Args:    p.Args,
		Env:     env,
		EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: r.Name(configName(r.Version))}}}},
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: *resource.NewQuantity(limits.MemoryBytes, resource.BinarySI),
				corev1.ResourceCPU:    *resource.NewMilliQuantity(milli, resource.DecimalSI),
			},
			Requests: corev1.ResourceList{
				// Memory cannot be taken back from a process: a pod asks for
				// what it may use. CPU can: it asks for a share.
				corev1.ResourceMemory: *resource.NewQuantity(limits.MemoryBytes, resource.BinarySI),
				corev1.ResourceCPU:    *resource.NewMilliQuantity(max(milli/cpuRequestShare, 10), resource.DecimalSI),
			},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			RunAsNonRoot:             &yes,
			RunAsUser:                r.UID,
			RunAsGroup:               r.GID,
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Lifecycle: &corev1.Lifecycle{
			PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: int64(drainDelay.Seconds())}},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if p.Type == "web" {
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: skiff.DefaultPort, Protocol: corev1.ProtocolTCP}}
		handler := corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}
		if check.Path != "" {
			handler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: check.Path, Port: intstr.FromString("http")}}
		}
		timeout := int32(max(check.Timeout.Round(time.Second).Seconds(), 1))
		const startupPeriod = 1
		c.StartupProbe = &corev1.Probe{ProbeHandler: handler, TimeoutSeconds: timeout, PeriodSeconds: startupPeriod,
			FailureThreshold: int32(max(check.Deadline.Seconds()/startupPeriod, 1))}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: handler, TimeoutSeconds: timeout, PeriodSeconds: 5, FailureThreshold: 2}
	}
	spec := corev1.PodSpec{
		ServiceAccountName:           r.Name(ServiceAccountName),
		AutomountServiceAccountToken: &no,
		EnableServiceLinks:           &no,
		// The sandbox's pause process is the pod's init: the app is not
		// pid 1, so it gets the signals' default actions (a Go program's
		// SIGTERM ends it as 143, not 2) and its orphans are reaped, as
		// under skiff-init on this machine.
		ShareProcessNamespace:         &yes,
		TerminationGracePeriodSeconds: &grace,
		Containers:                    []corev1.Container{c},
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       corev1.LabelHostname,
			WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: selector(r, p.Type)},
			// Each rollout's ReplicaSet spreads on its own.
			MatchLabelKeys: []string{appsv1.DefaultDeploymentUniqueLabelKey},
			// A cordoned or tainted node is no domain to spread over:
			// without it, a drained node's pods stay Pending.
			NodeTaintsPolicy: ptr(corev1.NodeInclusionPolicyHonor),
		}},
	}
	if r.Registry != nil {
		spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: r.Name(PullSecretName)}}
	}
	mountVolumes(r, &spec, p.Mounts)
	return spec, nil
}

func deployment(r *Release, p Process, meta func(string, map[string]string) metav1.ObjectMeta) (*appsv1.Deployment, error) {
	spec, err := PodSpec(r, p)
	if err != nil {
		return nil, err
	}
	replicas := int32(p.Replicas) //nolint:gosec // at most skiff.MaxScale
	revisions := int32(2)
	maxUnavailable, maxSurge := intstr.FromInt32(0), intstr.FromString("25%")
	om := meta(r.Name(p.Type), map[string]string{LabelProcess: p.Type, LabelRelease: strconv.Itoa(r.Version)})
	spec.Containers[0].Env = append(spec.Containers[0].Env, podNameEnv("DYNO"), podNameEnv("SKIFF_PROCESS"))
	tmpl := metav1.ObjectMeta{Labels: om.Labels}
	if ml := mountLabels(p.Mounts); ml != nil {
		tmpl.Labels = maps.Clone(om.Labels)
		maps.Copy(tmpl.Labels, ml)
	}
	if p.RestartedAt != "" {
		tmpl.Annotations = map[string]string{AnnotationRestartedAt: p.RestartedAt}
	}
	var progress *int32
	if p.Type == "web" {
		deadline := r.Check.Deadline
		if deadline <= 0 {
			deadline = defaultDeadline
		}
		// A rollout that is not done by then is reported as failed.
		progress = ptr(int32(deadline.Seconds()) + 60)
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: om,
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                &metav1.LabelSelector{MatchLabels: selector(r, p.Type)},
			RevisionHistoryLimit:    &revisions,
			ProgressDeadlineSeconds: progress,
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge},
			},
			Template: corev1.PodTemplateSpec{ObjectMeta: tmpl, Spec: spec},
		},
	}, nil
}

// dockerConfig is a pull secret's .dockerconfigjson for one registry.
func dockerConfig(reg *Registry) ([]byte, error) {
	if reg.Server == "" {
		return nil, fmt.Errorf("render: a registry needs a server")
	}
	type entry struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     []byte `json:"auth"` // base64 of user:password, as docker writes it
	}
	return json.Marshal(map[string]map[string]entry{"auths": {reg.Server: { //nolint:gosec // G117: a pull secret is this password, by design
		Username: reg.Username, Password: reg.Password, Auth: []byte(reg.Username + ":" + reg.Password),
	}}})
}

func ptr[T any](v T) *T { return &v }
