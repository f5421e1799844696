package skiff

import (
	"context"
	"strconv"
	"time"
)

// BuildStatus is where a build is.
type BuildStatus string

const (
	BuildRunning   BuildStatus = "building"
	BuildSucceeded BuildStatus = "succeeded"
	BuildFailed    BuildStatus = "failed"
)

// Build is the record of one build: what was built, by whom, and how it
// ended. IDs count up per app from 1.
type Build struct {
	AppID      string      `json:"-"`
	ID         int         `json:"id"`
	Commit     string      `json:"commit"`
	Status     BuildStatus `json:"status"`
	Actor      string      `json:"actor"`
	Builder    string      `json:"builder,omitempty"`
	Image      string      `json:"image,omitempty"`
	Buildpacks []string    `json:"buildpacks,omitempty"`
	Phases     BuildPhases `json:"phases"`
	Error      string      `json:"error,omitempty"`
	StartedAt  time.Time   `json:"started_at"`
	FinishedAt time.Time   `json:"finished_at,omitzero"`
}

// Key names the build for the build platform (its container, scratch
// directory, image tag and log): unique across apps, unlike ID.
func (b *Build) Key() string { return b.AppID + "-" + strconv.Itoa(b.ID) }

// ReleaseStatus is where a release is. A release is created pending, then
// becomes deployed when its instances serve (and it is the app's current
// release), or failed.
type ReleaseStatus string

const (
	ReleasePending  ReleaseStatus = "pending"
	ReleaseDeployed ReleaseStatus = "deployed"
	ReleaseFailed   ReleaseStatus = "failed"
)

// Release is a numbered, immutable version of what an app runs: an image,
// its config vars and the process types the image declares. Versions count
// up per app from 1 and never repeat.
type Release struct {
	AppID        string            `json:"-"`
	Version      int               `json:"version"`
	Image        string            `json:"image"`
	Config       map[string]string `json:"config"`
	ProcessTypes map[string]string `json:"process_types"`
	// Formation is the app's scale when the release was made; a rollback
	// keeps the current one, as on Heroku.
	Formation Formation `json:"formation"`
	// Scripts and Cron come from the app.json of the release's commit;
	// Mounts are the app's volume mounts when the release was made. A
	// rollback brings back all three with the image.
	Scripts DeployScripts `json:"scripts,omitzero"`
	Cron    []CronJob     `json:"cron,omitempty"`
	Mounts  []AppMount    `json:"mounts,omitempty"`
	// Change is the config change that made the release (config:set, a
	// rollback), applied to the app's config when it deploys; nil for
	// none. Kept with it, so that a release whose deploy a daemon's death
	// interrupted can still be made current exactly.
	Change      *ConfigChange `json:"-"`
	BuildID     int           `json:"build_id,omitempty"`
	Commit      string        `json:"commit,omitempty"`
	Description string        `json:"description"`
	Actor       string        `json:"actor"`
	Status      ReleaseStatus `json:"status"`
	Error       string        `json:"error,omitempty"`
	Current     bool          `json:"current"`
	CreatedAt   time.Time     `json:"created_at"`
}

// Scale is how many instances of a process type run, and their limits.
type Scale struct {
	Quantity int    `json:"quantity"`
	Limits   Limits `json:"limits"`
}

// Formation is an app's scale per process type.
type Formation map[string]Scale

// MaxScale caps the instances of one process type.
const MaxScale = 100

// ReleaseService stores builds, releases and formations.
type ReleaseService interface {
	CreateBuild(ctx context.Context, b *Build) error // sets ID and StartedAt
	FinishBuild(ctx context.Context, b *Build) error // status, image, phases, error
	ListBuilds(ctx context.Context, appID string, limit int) ([]*Build, error)
	FindBuild(ctx context.Context, appID string, id int) (*Build, error)

	// CreateRelease stores a pending release with the next version.
	CreateRelease(ctx context.Context, r *Release) error
	// DeployRelease makes the release current and, in the same transaction,
	// applies the config change that made it (nil for none).
	DeployRelease(ctx context.Context, appID string, version int, ch *ConfigChange) error
	FailRelease(ctx context.Context, appID string, version int, reason string) error
	ListReleases(ctx context.Context, appID string, limit int) ([]*Release, error)
	FindRelease(ctx context.Context, appID string, version int) (*Release, error)
	// CurrentRelease is the deployed release serving the app; ENOTFOUND
	// before the first deploy.
	CurrentRelease(ctx context.Context, appID string) (*Release, error)

	// SetReleaseOutput keeps what the release phase printed (its last
	// bytes); ReleaseOutput returns it.
	SetReleaseOutput(ctx context.Context, appID string, version int, output []byte) error
	ReleaseOutput(ctx context.Context, appID string, version int) ([]byte, error)

	Formation(ctx context.Context, appID string) (Formation, error)
	SetFormation(ctx context.Context, appID string, f Formation) error
}
