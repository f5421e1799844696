package skiff

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Scheduler runs the processes of releases: an app's long-running
// instances (web, worker …), its one-off runs, and their logs. It is the
// seam between what an app should run (decided by deploy, from the store)
// and where it runs: runtime.Runtime runs each instance as a runc container
// on this machine; another implementation may run them as pods of a
// Kubernetes cluster; skifftest.Scheduler runs them in memory, for tests.
// Every implementation passes skifftest.TestScheduler, the shared
// conformance suite.
//
// Who calls what:
//   - deploy (the pipeline, Reconcile, Watch): Start, WaitReady, Stop,
//     Instances, RemoveApp, AppLog; it alone decides which instances should
//     run, and serializes its changes per app.
//   - admin: Instances (ps), Logs (logs); Run through deploy.
//   - one-offs: Run for attached runs (`run`, and a release command whose
//     output streams to the pusher); Start with OneOff for detached runs
//     (`run:detached`, cron runs), which outlive the caller and the daemon.
//
// The contract every implementation keeps:
//
// Errors are *Error where the user can act on them: EINVALID for a spec
// that cannot run (a process type the image has no command for, an image
// user that does not exist, a mount this scheduler cannot provide — never
// run without it), EUNAVAILABLE for exhausted resources (addresses, disk),
// ENOTFOUND for an instance id it does not know (WaitReady). Any other
// error is internal.
//
// Idempotence: Stop of an instance that is gone, and RemoveApp of an app
// with nothing left, succeed. Start is not idempotent: each call makes a
// new instance with a new ID, even for the same spec; the caller decides
// how many run.
//
// Ready: an instance is ready when it accepts TCP connections on its port
// at Addr (for a web process; other types have no port to check).
// WaitReady reports it; the router's health check comes on top, before any
// traffic. An instance that exits before it is ready fails WaitReady.
//
// Addresses: Addr is "host:port" as the router dials it, whatever the
// scheduler's network: a veth on this machine, a pod's IP. Callers never
// assume loopback or a particular range, and never reach an instance by any
// other way.
//
// Restarts: a long-running instance whose process exits is restarted, with
// a backoff, until Stop; meanwhile it is listed as InstanceCrashed with
// LastExit. A OneOff instance is never restarted.
//
// Daemon restarts: instances outlive the process that started them. A new
// Scheduler over the same state (runtime: the data directory; a cluster:
// its API) lists the same instances with the same IDs, specs, restart
// counts and addresses, keeps supervising them, and never runs a second
// copy. An instance whose process ended while nobody watched counts as a
// crash (and restarts), or for a OneOff instance as its exit. Attached runs
// (Run) end with their caller: they do not survive, and what they leave is
// removed by the next Scheduler. Logs survive.
//
// Concurrency: every method is safe for concurrent use.
type Scheduler interface {
	// Start creates an instance and returns when its process runs (not
	// necessarily ready). The returned Instance has its ID and Spec; Addr
	// may still be empty (Instances has it once it is known).
	Start(ctx context.Context, spec *InstanceSpec) (*Instance, error)
	// WaitReady returns when the instance is ready; it fails if the
	// instance exits or is stopped first (EUNAVAILABLE, a message that
	// begins with the instance's name: "web.1 exited … before it was
	// ready", which deploy shows as it is), or with ctx.
	WaitReady(ctx context.Context, id string) error
	// Stop asks the instance's process to end (SIGTERM), waits up to grace
	// (0: the scheduler's default, 30 s), kills whatever is left and
	// removes the instance; it returns when the instance is gone. A
	// missing instance is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Instances lists an app's instances ("" for every app), sorted by
	// app, process type and index, with resource figures where known.
	Instances(ctx context.Context, appID string) ([]*Instance, error)
	// RemoveApp stops every instance of the app and deletes its logs.
	RemoveApp(ctx context.Context, appID string) error

	// Run runs a one-off process attached to the request's streams (or
	// terminal) and returns its exit code when it ends; cancelling ctx
	// kills it. Nothing of it remains afterwards. An exit code that is
	// not 0 is not an error.
	Run(ctx context.Context, req *RunRequest) (int, error)

	// Logs calls fn for each matching line, oldest first; with Follow it
	// keeps going until ctx ends (then it returns nil) or fn fails.
	Logs(ctx context.Context, q LogQuery, fn func(LogLine) error) error
	// AppLog records a platform line in the app's log ("Scaled to web=2").
	AppLog(appID, process, text string)
}

// RolloutScheduler is a Scheduler that also runs an app's formation as a
// whole, the way a Kubernetes cluster does: one object per process type (a
// Deployment) that replaces its pods by itself, a few at a time, each
// taking traffic once it is ready. deploy prefers it for the formation of
// an app whose scheduler has it (a release, a scale, a restart, a
// rollback); one-offs (run, detached runs, the release phase) stay
// Scheduler calls. deploy keeps the router's backends in step with
// Backends, which the scheduler reports changes of.
type RolloutScheduler interface {
	Scheduler
	// Rollout makes the app run f and returns once every process type
	// has its new processes ready and none of the old ones left, calling
	// progress with each step it sees (scheduled, pulling, started,
	// ready, and the cluster's reasons). When that cannot come (an image
	// that cannot be pulled, a crash loop, no room on any node, the
	// deadline) it fails with EUNAVAILABLE and the reason, or with ctx;
	// what it applied stays: the caller rolls back by applying the
	// previous formation. EINVALID for what the scheduler cannot run
	// (a volume without storage, say), before anything is applied.
	// Applying the same f again changes nothing.
	Rollout(ctx context.Context, f *FormationSpec, progress func(string)) error
	// Backends lists the addresses ("ip:port", sorted) of the app's web
	// processes that are ready to take traffic now.
	Backends(ctx context.Context, appID string) ([]string, error)
	// Evict removes everything the scheduler made for the app (its
	// processes, and whatever else it applied), keeping its log: the app
	// moves to another scheduler. Idempotent.
	Evict(ctx context.Context, appID string) error
}

// FormationSpec is an app's release at its formation, as a
// RolloutScheduler runs it.
type FormationSpec struct {
	AppID   string `json:"app_id"`
	AppName string `json:"app_name"`
	Release int    `json:"release"`
	Image   string `json:"image"`
	// Env is the release's config vars; the scheduler adds PORT and
	// SKIFF_* as for instances.
	Env map[string]string `json:"env,omitempty"`
	// Processes are every process type of the release, those scaled to
	// 0 included, sorted by type.
	Processes []ProcessSpec `json:"processes"`
	// Check is the web process's health check; DrainTimeout how long a
	// stopping web process has for its requests in flight.
	Check        HealthCheck   `json:"check"`
	DrainTimeout time.Duration `json:"drain_timeout"`
	// Cron are the release's cron jobs, run on the scheduler's own
	// schedule (never overlapping); CronSuspended the ids of those
	// suspended.
	Cron          []CronJob `json:"cron,omitempty"`
	CronSuspended []string  `json:"cron_suspended,omitempty"`
	// CronMounts are the volumes the cron runs mount.
	CronMounts []Mount `json:"cron_mounts,omitempty"`
	// Restart lists the process types whose processes are replaced
	// although nothing else changed (ps:restart); "*" for all.
	Restart []string `json:"restart,omitempty"`
	// Hosts are the names the app answers on (<app>.<base domain> and
	// its domains), for a scheduler whose cluster serves the traffic
	// itself (SelfRouting).
	Hosts []string `json:"hosts,omitempty"`
}

// SelfRouting is a RolloutScheduler that may serve an app's traffic
// itself (a cluster's ingress controller, through an Ingress skiff
// applies) rather than through skiff's router. While RoutesTraffic is
// true, its Backends are none (skiff's router has no backends for the
// apps it runs: their hosts point at the cluster) and a rollout is gated
// on the cluster's own readiness checks alone.
type SelfRouting interface {
	RoutesTraffic() bool
}

// ImagePusher is a scheduler that must copy a release's image somewhere
// before it can run it (a cluster whose nodes pull from an external
// registry). PushImage returns once spec's image (spec.AppName and
// spec.Image name it) is there, at once when it is already, calling
// progress with what it does; EUNAVAILABLE says why not and what to do.
// The scheduler pushes by itself before it runs an image it has not
// pushed; deploy calls PushImage first so that a push shows its progress.
type ImagePusher interface {
	PushImage(ctx context.Context, spec *InstanceSpec, progress func(string)) error
}

// ProcessSpec is one process type of a FormationSpec.
type ProcessSpec struct {
	Type     string  `json:"type"`
	Quantity int     `json:"quantity"`
	Limits   Limits  `json:"limits"`
	Mounts   []Mount `json:"mounts,omitempty"`
}

// Limits are the resources one instance of a process type may use.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes"` // hard limit; the kernel kills the instance above it
	CPU         float64 `json:"cpu"`          // cores (0.5 is half of one)
	Pids        int64   `json:"pids"`         // processes and threads
}

// DefaultLimits apply where resource:limit set nothing.
var DefaultLimits = Limits{MemoryBytes: 512 << 20, CPU: 1, Pids: 512}

// DefaultPort is the PORT every instance gets; each instance has its own
// address, so they need not differ.
const DefaultPort = 5000

// InstanceSpec is one process of a release, as deploy asks for it.
type InstanceSpec struct {
	AppID       string `json:"app_id"`
	AppName     string `json:"app_name"`
	Release     int    `json:"release"`
	Image       string `json:"image"` // manifest digest in the image store
	ProcessType string `json:"process_type"`
	Index       int    `json:"index"` // 1 for web.1; Run picks its own
	// Command replaces the image's command for ProcessType (a one-off's
	// command line); empty: the image's own.
	Command []string `json:"command,omitempty"`
	// Env is the process's environment on top of the image's: the
	// release's config vars, and whatever the caller adds (a link's URL).
	// The scheduler sets PORT, DYNO and SKIFF_* itself; they win.
	Env    map[string]string `json:"env,omitempty"`
	Limits Limits            `json:"limits"`
	// Mounts are named volumes to mount into the process. A scheduler
	// that cannot provide one refuses the spec (EINVALID): a process never
	// runs without the storage it was given.
	Mounts []Mount `json:"mounts,omitempty"`
	// Address is the instance's fixed address: a service's, in the
	// network's service pool, reachable only along its links. Without
	// one an instance gets an address from the pool and belongs to its
	// app's network group, which links open services to.
	Address string `json:"address,omitempty"`
	// OneOff runs Command once, detached: the instance is never restarted,
	// and when its process ends it stays listed as InstanceExited with its
	// ExitCode (across daemon restarts too) until Stop removes it. deploy's
	// rollouts leave OneOff instances alone.
	OneOff bool `json:"one_off,omitempty"`
	// CronJob is the id of the app's cron job that a OneOff instance is a
	// run of (cron:run). A scheduler that runs the app's cron jobs itself
	// (a cluster's CronJobs) makes the run from its own definition of the
	// job, so that it runs as the scheduled ones do; others ignore it.
	CronJob string `json:"cron_job,omitempty"`
}

// Name is the instance's name as users see it: "web.1".
func (s *InstanceSpec) Name() string { return fmt.Sprintf("%s.%d", s.ProcessType, s.Index) }

// Mount is a named volume mounted at Path inside the process. Volume is
// the volume's ID (Volume.ID); the scheduler hands its directory to the
// process's user.
type Mount struct {
	Volume   string `json:"volume"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// InstanceState is where an instance is in its life.
type InstanceState string

const (
	InstanceStarting InstanceState = "starting" // created, process not yet running
	InstanceUp       InstanceState = "up"
	InstanceCrashed  InstanceState = "crashed" // exited; restarts after a backoff
	InstanceStopping InstanceState = "stopping"
	InstanceExited   InstanceState = "exited" // a OneOff instance whose process ended
)

// Instance is a running (or restarting, or exited one-off) instance.
type Instance struct {
	ID        string        `json:"id"` // opaque, unique, stable for the instance's life
	Spec      InstanceSpec  `json:"spec"`
	State     InstanceState `json:"state"`
	Addr      string        `json:"addr,omitempty"` // host:port the router dials
	Node      string        `json:"node,omitempty"` // where it runs, for ps; "" for this machine
	CreatedAt time.Time     `json:"created_at"`
	StartedAt time.Time     `json:"started_at,omitempty"` // of the current run
	Restarts  int           `json:"restarts"`
	// LastExit describes how the previous run ended ("exited with status
	// 1", "killed: out of memory"); empty before any exit.
	LastExit   string    `json:"last_exit,omitempty"`
	LastExitAt time.Time `json:"last_exit_at,omitempty"`
	// ExitCode is a OneOff instance's exit code once it is InstanceExited
	// (128+n for a signal, -1 when unknown).
	ExitCode    int           `json:"exit_code,omitempty"`
	CPU         time.Duration `json:"cpu_ns"`
	MemoryBytes int64         `json:"memory_bytes"`
	MemoryLimit int64         `json:"memory_limit"`
	// CPUCores is the CPU in use now, where a scheduler knows only that
	// and not the CPU time (a cluster's metrics API).
	CPUCores float64 `json:"cpu_cores,omitempty"`
	// NoUsage says why CPU and MemoryBytes are not known ("" when they
	// are): ps says so rather than showing zeros.
	NoUsage string `json:"no_usage,omitempty"`
}

// LogLine is one line of an app's log: its instances' output and the
// platform's own lines about it.
type LogLine struct {
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`  // "app" or "skiff"
	Process string    `json:"process"` // "web.1", "run.1"; "" for app-wide platform lines
	Text    string    `json:"text"`
}

// LogQuery selects log lines.
type LogQuery struct {
	AppID   string
	Process string    // "web" (every web instance), "web.1", or "" for all
	Since   time.Time // zero: no bound
	Lines   int       // the last N lines of history; 0 means a default of 100
	Follow  bool      // keep streaming new lines until ctx ends
}

// RunRequest is an attached one-off process (`run`, a release command).
type RunRequest struct {
	// Spec is what runs; the process is named run.N in the log (the
	// scheduler sets ProcessType and picks Index), but a release phase's
	// task (ProcessType OneOffRelease with the release's version as
	// Index: NamedOneOff) keeps its name, release.<version>, the name its
	// output has in the log.
	Spec   InstanceSpec
	Args   []string // the command line; run through a shell like Heroku
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // unused with a TTY (the terminal merges the streams)
	TTY    *TTY      // non-nil for an interactive terminal
}
