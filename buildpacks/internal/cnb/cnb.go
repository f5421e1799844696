// Package cnb is the buildpack side of the Cloud Native Buildpacks interface
// (buildpack API 0.10): what /bin/detect and /bin/build receive from the
// lifecycle (environment, plan, restored layers) and what they hand back
// (exit status, build plan, layers with their TOML, launch.toml), plus the
// output conventions skiff's buildpacks share. It knows nothing about any
// language.
package cnb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// API is the buildpack API version skiff's buildpacks implement. 0.10 is
// served by every lifecycle skiff may pin (v0.20 and v0.21) and is the first
// to describe targets instead of stacks.
const API = "0.10"

// Exit statuses of /bin/detect and /bin/build.
const (
	exitPass       = 0
	exitError      = 1
	exitDetectFail = 100
)

// Buildpack is one buildpack: its identity and its two executables' logic.
type Buildpack struct {
	ID          string // e.g. "skiff/nodejs"
	Version     string // X.Y.Z
	Name        string
	Description string
	// Detect returns a nil plan and no error when the app is not for this
	// buildpack (exit 100), a plan (possibly empty) when it is.
	Detect func(*DetectContext) (*BuildPlan, error)
	Build  func(*BuildContext) error
}

// RunDetect runs bp's detect logic with the lifecycle's environment and
// returns the exit status.
func RunDetect(ctx context.Context, bp *Buildpack, stdout io.Writer) int {
	log := NewLog(stdout)
	dc, err := newDetectContext(ctx, log)
	if err != nil {
		log.Error(err)
		return exitError
	}
	plan, err := bp.Detect(dc)
	if err != nil {
		log.Error(fmt.Errorf("%s detect: %w", bp.ID, err))
		return exitError
	}
	if plan == nil {
		return exitDetectFail
	}
	if err := writeTOML(dc.BuildPlanPath, plan); err != nil {
		log.Error(fmt.Errorf("%s detect: write build plan: %w", bp.ID, err))
		return exitError
	}
	return exitPass
}

// RunBuild runs bp's build logic with the lifecycle's environment and returns
// the exit status. Failures are printed in the " !     " convention; a
// *UserError is printed as it is, anything else with the buildpack's name.
func RunBuild(ctx context.Context, bp *Buildpack, stdout io.Writer) int {
	log := NewLog(stdout)
	bc, err := newBuildContext(ctx, log)
	if err != nil {
		log.Error(err)
		return exitError
	}
	if err := bp.Build(bc); err != nil {
		var ue *UserError
		if !errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", bp.Name, err)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("build stopped (%v): %w", context.Cause(ctx), err)
		}
		log.Error(err)
		return exitError
	}
	if err := bc.writeLaunch(); err != nil {
		log.Error(fmt.Errorf("%s: write launch.toml: %w", bp.Name, err))
		return exitError
	}
	return exitPass
}

// UserError is a build failure the app's author can fix; its message says
// how. It is printed without internal context.
type UserError struct {
	Message string
	Detail  []string // further lines, e.g. a hint
}

func (e *UserError) Error() string { return e.Message }

// Failf returns a *UserError.
func Failf(format string, args ...any) *UserError {
	return &UserError{Message: fmt.Sprintf(format, args...)}
}

// Hint adds a line to the error and returns it.
func (e *UserError) Hint(format string, args ...any) *UserError {
	e.Detail = append(e.Detail, fmt.Sprintf(format, args...))
	return e
}

// Exists reports whether path exists (following symlinks). Errors other than
// "not found" count as existing, so a file we cannot read is reported when
// it is opened rather than silently ignored.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
