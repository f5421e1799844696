package skiff

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// BuildRequest is one build of a pushed commit: what the deploy pipeline
// hands the builder.
type BuildRequest struct {
	App     *App
	BuildID string // unique per build; names the image tag and the log file
	Commit  string
	// Source is the pushed tree as a tar stream (git archive). It is
	// extracted inside the build's sandbox rules: no escapes, no devices.
	Source io.Reader
	// Builder is the app's builder image (builder:set); "" means the default
	// builder made by builder:create.
	Builder string
	// Buildpacks pins the buildpacks to run, in order (buildpacks:set), as
	// ids ("skiff/nodejs"), id@version, or image references; empty means the
	// builder's own detection order (or project.toml's).
	Buildpacks []string
	// Env holds the config vars marked build-time; they reach buildpacks as
	// /platform/env/<NAME>.
	Env map[string]string
	// PreviousImage is the digest of the current release's image, whose
	// layers the export reuses; "" on the first build.
	PreviousImage string
}

// BuildPhases are the lifecycle's phase durations.
type BuildPhases struct {
	Analyze time.Duration `json:"analyze"`
	Detect  time.Duration `json:"detect"`
	Restore time.Duration `json:"restore"`
	Build   time.Duration `json:"build"`
	Export  time.Duration `json:"export"`
}

// String renders the phases as the push output's timing line does:
// "detect 0.1s, restore 0.2s, build 9.8s, export 2.2s" (analyze counts
// as restore, as users see one "restore" step).
func (p BuildPhases) String() string {
	s := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
	return strings.Join([]string{
		"detect " + s(p.Detect), "restore " + s(p.Analyze+p.Restore),
		"build " + s(p.Build), "export " + s(p.Export),
	}, ", ")
}

// BuildResult is a successful build.
type BuildResult struct {
	// Image is the manifest digest ("sha256:…") of the app image in the
	// image store; the release records it.
	Image string `json:"image"`
	// ProcessTypes maps process type to command, from the image's
	// io.buildpacks.build.metadata label.
	ProcessTypes   map[string]string `json:"process_types"`
	DefaultProcess string            `json:"default_process,omitempty"`
	Buildpacks     []string          `json:"buildpacks"` // id@version of those that ran
	Builder        string            `json:"builder"`    // the builder image used
	Phases         BuildPhases       `json:"phases"`
	Duration       time.Duration     `json:"duration"`
}

// Builder turns source into app images with Cloud Native Buildpacks.
//
// Build streams the buildpacks' output to out (the pusher's terminal, and a
// capped log file kept under the data directory) and returns the image, or
// an *Error: EINVALID when the app's source cannot be built (no buildpack
// detects, a compile error: out has the details), EUNAVAILABLE when the
// builder is missing, the disk is full or too many builds run, ECONFLICT
// when the app already has a build running. Cancelling ctx stops the build
// and leaves no process behind. Builds of different apps run concurrently.
type Builder interface {
	Build(ctx context.Context, req *BuildRequest, out io.Writer) (*BuildResult, error)
	// Cancel stops the app's running build, if any.
	Cancel(appID string) bool
	// PurgeCache removes the app's build cache (builds:purge-cache).
	PurgeCache(ctx context.Context, appID string) error
	// BuildLog opens the log of a build (builds:output).
	BuildLog(appID, buildID string) (io.ReadCloser, error)
	// CollectGarbage removes app images whose digests are not in keep (the
	// caller passes every image still referenced: by default the last 5
	// releases of each app, see DefaultKeepReleases) and every blob nothing
	// references any more.
	CollectGarbage(ctx context.Context, keep []string) error
}

// DefaultKeepReleases is how many releases per app keep their images.
const DefaultKeepReleases = 5
