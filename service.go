package skiff

import (
	"context"
	"io"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Service kinds.
const (
	ServicePostgres = "postgres"
	ServiceRedis    = "redis"
)

// ServiceKinds are the kinds of backing service skiff runs.
var ServiceKinds = []string{ServicePostgres, ServiceRedis}

// ServiceState is where a service is in its life.
type ServiceState string

const (
	// ServiceCreating: recorded, not yet made. A daemon that finds one
	// at start (it was killed mid-create) removes it and its data: a
	// service is either whole or not there.
	ServiceCreating ServiceState = "creating"
	ServiceReady    ServiceState = "ready"
)

// Service is a backing service: a PostgreSQL database or a Redis that skiff
// runs sandboxed and supervised like an app instance, from a Debian image,
// with its data on a volume under the data directory. Its ID keys
// everything on disk; its Name is unique across kinds.
type Service struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`    // ServicePostgres or ServiceRedis
	Version string `json:"version"` // the major version: "15"
	// Packages are the Debian packages of the image and their versions.
	Packages map[string]string `json:"packages,omitempty"`
	Image    string            `json:"image"`   // manifest digest in the image store
	RunAs    string            `json:"run_as"`  // "uid:gid" of the server inside, which owns its data
	Volume   string            `json:"volume"`  // the ID of the volume that holds its data
	Address  string            `json:"address"` // fixed: the same across restarts
	Port     int               `json:"port"`
	Limits   Limits            `json:"limits"`
	// DiskBytes is the size of the service's own file system, which
	// holds its data: a server that fills it gets "no space left", and
	// the host's disk is not touched.
	DiskBytes int64  `json:"disk_bytes"`
	Owner     string `json:"owner,omitempty"`
	// Password is generated at create and never shown but in the URL
	// that links put in the apps' config.
	Password  string       `json:"-"`
	State     ServiceState `json:"state"`
	CreatedAt time.Time    `json:"created_at"`
}

// Database is the database (PostgreSQL) or database number (Redis, "0")
// that apps get.
func (s *Service) Database() string {
	if s.Kind == ServiceRedis {
		return "0"
	}
	return s.Name
}

// User is the role apps connect as: the database's owner, not a superuser.
func (s *Service) User() string {
	if s.Kind == ServiceRedis {
		return ""
	}
	return "app"
}

// URL is what linked apps get: postgres://app:…@10.213.240.2:5432/mydb,
// redis://:…@10.213.240.6:6379/0.
func (s *Service) URL() string {
	scheme := "postgres"
	if s.Kind == ServiceRedis {
		scheme = "redis"
	}
	u := url.URL{Scheme: scheme, User: url.UserPassword(s.User(), s.Password),
		Host: s.Address + ":" + strconv.Itoa(s.Port), Path: "/" + s.Database()}
	return u.String()
}

// ConfigVar is the config var a link sets by default.
func (s *Service) ConfigVar() string {
	if s.Kind == ServiceRedis {
		return "REDIS_URL"
	}
	return "DATABASE_URL"
}

// ValidateServiceName checks a service name: the rule for app names.
func ValidateServiceName(name string) error {
	if err := ValidateAppName(name); err != nil {
		return Errorf(EINVALID, "invalid service name %s: use 2 to 63 lower-case letters, digits and single hyphens, starting with a letter (like my-db)", quoteForUser(name))
	}
	return nil
}

// ValidServiceKind reports whether kind names a service kind.
func ValidServiceKind(kind string) bool { return slices.Contains(ServiceKinds, kind) }

// AppNetGroup and BuildNetGroup name the network groups that an app's
// containers (instances, one-off and cron runs) and its builds belong to
// while they run; a link to a service opens the path from the first, and
// with ServiceLink.Builds from the second too.
func AppNetGroup(appID string) string   { return appID }
func BuildNetGroup(appID string) string { return "b-" + appID }

// ServiceLink joins a service to an app: the app's instances, one-off and
// cron runs reach the service, and the app's config has the service's URL
// in Var.
type ServiceLink struct {
	ServiceID string `json:"service_id"`
	AppID     string `json:"app_id"`
	AppName   string `json:"app"`
	Var       string `json:"var"`
	// Builds lets the app's builds reach the service too (off unless
	// asked for: a build runs code from the pushed repository).
	Builds bool `json:"builds,omitempty"`
	// Pending is true between the link's record and the release that
	// sets Var; a daemon that finds one at start finishes it if the
	// release happened, and removes it otherwise.
	Pending   bool      `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// ServiceStore keeps services, their links and their backup schedules.
type ServiceStore interface {
	// CreateService records s in state ServiceCreating; a name taken by
	// any service is ECONFLICT. It sets s.ID and s.CreatedAt.
	CreateService(ctx context.Context, s *Service) error
	// UpdateService stores s's image, packages, limits and state.
	UpdateService(ctx context.Context, s *Service) error
	// DeleteService removes the service, its links and schedule.
	DeleteService(ctx context.Context, id string) error
	FindService(ctx context.Context, name string) (*Service, error) // ENOTFOUND
	FindServiceByID(ctx context.Context, id string) (*Service, error)
	ListServices(ctx context.Context) ([]*Service, error) // by name

	// AddLink records l as pending; linking an app to a service twice,
	// or two services to one var of an app, is ECONFLICT.
	AddLink(ctx context.Context, l *ServiceLink) error
	// CompleteLink marks the link done.
	CompleteLink(ctx context.Context, serviceID, appID string) error
	RemoveLink(ctx context.Context, serviceID, appID string) error
	// Links lists a service's links ("" for every service's).
	Links(ctx context.Context, serviceID string) ([]*ServiceLink, error)
	// AppLinks lists the links of an app.
	AppLinks(ctx context.Context, appID string) ([]*ServiceLink, error)

	// SetBackupSchedule sets (or with schedule "" removes) when a
	// service is backed up and how many backups are kept.
	SetBackupSchedule(ctx context.Context, serviceID string, sch *BackupSchedule) error
	BackupSchedules(ctx context.Context) ([]*BackupSchedule, error)
}

// BackupSchedule is when a service is backed up, to a directory under the
// data directory, and how many of those backups are kept.
type BackupSchedule struct {
	ServiceID string    `json:"service_id"`
	Schedule  string    `json:"schedule"` // five-field cron, UTC
	Keep      int       `json:"keep"`
	LastRun   time.Time `json:"last_run,omitzero"`
}

// Backup is one stored backup of a service.
type Backup struct {
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// ServiceStatus is what services:info shows of a running service.
type ServiceStatus struct {
	State       string    `json:"state"` // up, starting, crashed, stopped
	StartedAt   time.Time `json:"started_at,omitzero"`
	Restarts    int       `json:"restarts"`
	LastExit    string    `json:"last_exit,omitempty"`
	DiskBytes   int64     `json:"disk_bytes"`
	DiskLimit   int64     `json:"disk_limit"`
	MemoryBytes int64     `json:"memory_bytes"`
	Connections int       `json:"connections"`
}

// DebianImageRequest asks for images made from one Debian root file system
// (debootstrap of Suite with Packages, cached), each with its own config.
type DebianImageRequest struct {
	Suite    string
	Packages []string
	Images   []ImageConfig
	Rebase   bool // make the root file system again even when cached
}

// ImageConfig is one image's config; User is a user name of the root file
// system, stored as its numeric ids.
type ImageConfig struct {
	Ref        string
	User       string
	Cmd, Env   []string
	WorkingDir string
	Labels     map[string]string
}

// DebianImages are the images made: digest by ref, the versions of the
// packages asked for, and the user (ImageConfig.User, a name) each runs as,
// as numeric "uid:gid".
type DebianImages struct {
	Digests  map[string]string
	Packages map[string]string
	Users    map[string]string
}

// DebianImager makes Debian images (the build package does it, as it
// makes the default builder).
type DebianImager interface {
	CreateDebianImages(ctx context.Context, req *DebianImageRequest, out io.Writer) (*DebianImages, error)
}

// ServiceRequest asks for a new service.
type ServiceRequest struct {
	Name    string
	Kind    string
	Version string // "" for the default
	Limits  Limits // zero fields take the defaults
	// DiskBytes is the service's disk; 0 for the default.
	DiskBytes int64
}

// LinkOptions are a link's choices.
type LinkOptions struct {
	Var    string // the config var; "" for the service's (DATABASE_URL, REDIS_URL)
	Builds bool   // the app's builds reach the service too
}

// ServiceManager runs backing services. Errors are *Error where the user
// can act on them; progress goes to out.
type ServiceManager interface {
	// Versions lists the versions of kind that can be created, the
	// default first.
	Versions(kind string) []string
	// Create makes a service and returns it ready: a failure or a
	// cancelled ctx leaves nothing behind.
	Create(ctx context.Context, req *ServiceRequest, out io.Writer) (*Service, error)
	// Destroy removes a service and its data; a linked one is ECONFLICT.
	Destroy(ctx context.Context, svc *Service, out io.Writer) error
	Restart(ctx context.Context, svc *Service, out io.Writer) error
	Status(ctx context.Context, svc *Service) (*ServiceStatus, error)
	// Link makes svc reachable from app and sets app's var to its URL,
	// through a new release.
	Link(ctx context.Context, svc *Service, app *App, opts LinkOptions, out io.Writer) error
	// Unlink cuts the path at once, then unsets the var.
	Unlink(ctx context.Context, svc *Service, app *App, out io.Writer) error
	// Connect runs the service's client (psql, redis-cli) attached to
	// req's streams or terminal and returns its exit code.
	Connect(ctx context.Context, svc *Service, req *RunRequest) (int, error)
	// Backup writes a consistent dump of svc to w, progress to out.
	Backup(ctx context.Context, svc *Service, w io.Writer, out io.Writer) error
	// Restore replaces svc's data with a dump Backup wrote.
	Restore(ctx context.Context, svc *Service, r io.Reader, out io.Writer) error
	// Backups lists the stored (scheduled) backups; OpenBackup reads one.
	Backups(ctx context.Context, svc *Service) ([]*Backup, error)
	OpenBackup(ctx context.Context, svc *Service, name string) (io.ReadCloser, error)
	// SetBackupSchedule backs svc up on a five-field cron schedule (UTC),
	// keeping the newest keep backups; "" stops it.
	SetBackupSchedule(ctx context.Context, svc *Service, schedule string, keep int) error
	Logs(ctx context.Context, svc *Service, q LogQuery, fn func(LogLine) error) error
}
