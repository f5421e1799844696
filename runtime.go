package skiff

import (
	"context"
	"fmt"
	"io"
	"time"
)

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

// InstanceSpec is one instance of a release's process type, as the deploy
// pipeline asks for it.
type InstanceSpec struct {
	AppID       string            `json:"app_id"`
	AppName     string            `json:"app_name"`
	Release     int               `json:"release"`
	Image       string            `json:"image"` // manifest digest in the image store
	ProcessType string            `json:"process_type"`
	Index       int               `json:"index"`             // 1 for web.1
	Command     []string          `json:"command,omitempty"` // empty: the image's own command for ProcessType
	Env         map[string]string `json:"env,omitempty"`     // the release's config vars
	Limits      Limits            `json:"limits"`
	// Mounts are named volumes to mount into the process. A scheduler
	// that cannot provide one refuses the spec (EINVALID): a process never
	// runs without the storage it was given.
	Mounts []Mount `json:"mounts,omitempty"`
}

// Mount is a named volume mounted at Path inside the process. Volume is
// the volume's ID (Volume.ID); the scheduler hands its directory to the
// process's user.
type Mount struct {
	Volume   string `json:"volume"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Name is the instance's name as users see it: "web.1".
func (s *InstanceSpec) Name() string { return fmt.Sprintf("%s.%d", s.ProcessType, s.Index) }

// InstanceState is where an instance is in its life.
type InstanceState string

const (
	InstanceStarting InstanceState = "starting" // created, process not yet running
	InstanceUp       InstanceState = "up"
	InstanceCrashed  InstanceState = "crashed" // exited; restarts after a backoff
	InstanceStopping InstanceState = "stopping"
)

// Instance is a running (or restarting) instance.
type Instance struct {
	ID        string        `json:"id"`
	Spec      InstanceSpec  `json:"spec"`
	State     InstanceState `json:"state"`
	Addr      string        `json:"addr,omitempty"` // host:port the router dials
	CreatedAt time.Time     `json:"created_at"`
	StartedAt time.Time     `json:"started_at,omitempty"` // of the current run
	Restarts  int           `json:"restarts"`
	// LastExit describes how the previous run ended ("exited with status
	// 1", "killed: out of memory"); empty before any exit.
	LastExit    string        `json:"last_exit,omitempty"`
	LastExitAt  time.Time     `json:"last_exit_at,omitempty"`
	CPU         time.Duration `json:"cpu_ns"`
	MemoryBytes int64         `json:"memory_bytes"`
	MemoryLimit int64         `json:"memory_limit"`
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

// RunRequest is a one-off instance (`run`): attached, removed afterwards.
type RunRequest struct {
	Spec   InstanceSpec // Index is chosen by the runtime
	Args   []string     // the command line; run through a shell like Heroku
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // unused with a TTY (the terminal merges the streams)
	TTY    *TTY      // non-nil for an interactive terminal
}

// Runtime runs instances. Instances outlive the daemon: a new Runtime
// re-adopts those it finds and keeps supervising them. Methods are safe for
// concurrent use; errors are *Error where the user can act on them.
type Runtime interface {
	// Start creates an instance and returns when its process runs (not
	// necessarily ready); from then on it is restarted whenever it exits,
	// with a backoff, until Stop.
	Start(ctx context.Context, spec *InstanceSpec) (*Instance, error)
	// WaitReady returns when the instance accepts connections on its port;
	// it fails if the instance exits first, or with ctx.
	WaitReady(ctx context.Context, id string) error
	// Stop sends SIGTERM, waits up to grace (0: 30 s), kills whatever is
	// left and removes the instance. Stopping a missing instance is not an
	// error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Instances lists an app's instances ("" for every app), with cgroup
	// figures.
	Instances(ctx context.Context, appID string) ([]*Instance, error)
	// Logs calls fn for each matching line, oldest first; with Follow it
	// keeps going until ctx ends or fn fails.
	Logs(ctx context.Context, q LogQuery, fn func(LogLine) error) error
	// AppLog records a platform line in the app's log ("Scaled to web=2").
	AppLog(appID, process, text string)
	// Run runs a one-off instance attached to the request's streams and
	// returns its exit code.
	Run(ctx context.Context, req *RunRequest) (int, error)
	// RemoveApp stops the app's instances and deletes its logs.
	RemoveApp(ctx context.Context, appID string) error
}
