package cnb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Env is the environment the lifecycle gave the buildpack: its own
// variables, the platform's user-provided ones (buildpack.toml leaves
// clear-env false, so the lifecycle sets them), and the build environment of
// the buildpacks before this one (their layers' bin/ on PATH, env/ files).
type Env []string

// Get returns the value of name, or "".
func (e Env) Get(name string) string {
	v, _ := e.Lookup(name)
	return v
}

// Lookup returns the value of name and whether it is set.
func (e Env) Lookup(name string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// With returns a copy of e with the given NAME=value pairs set, replacing
// earlier values. Commands get e.With(...) as their explicit environment:
// the lifecycle's environment must reach them (that is how one buildpack's
// tools reach the next), plus what this buildpack adds.
func (e Env) With(pairs ...string) Env {
	out := make(Env, 0, len(e)+len(pairs))
	drop := map[string]bool{}
	for _, p := range pairs {
		k, _, _ := strings.Cut(p, "=")
		drop[k] = true
	}
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, pairs...)
}

// PrependPath returns e with dirs put in front of PATH.
func (e Env) PrependPath(dirs ...string) Env {
	p := strings.Join(dirs, string(os.PathListSeparator))
	if old := e.Get("PATH"); old != "" {
		p += string(os.PathListSeparator) + old
	}
	return e.With("PATH=" + p)
}

// DetectContext is what /bin/detect receives.
type DetectContext struct {
	Context       context.Context
	AppDir        string // the working directory: the app's source
	BuildpackDir  string
	PlatformDir   string
	BuildPlanPath string
	Env           Env
	Log           *Log
}

// BuildContext is what /bin/build receives, and collects what it produces.
type BuildContext struct {
	Context      context.Context
	AppDir       string
	BuildpackDir string
	PlatformDir  string
	LayersDir    string
	Plan         BuildpackPlan
	Env          Env
	Log          *Log

	processes []Process
	labels    []Label
}

func newDetectContext(ctx context.Context, log *Log) (*DetectContext, error) {
	env := Env(os.Environ())
	app, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the app directory: %w", err)
	}
	dc := &DetectContext{Context: ctx, AppDir: app, Env: env, Log: log}
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"CNB_BUILDPACK_DIR", &dc.BuildpackDir},
		{"CNB_PLATFORM_DIR", &dc.PlatformDir},
		{"CNB_BUILD_PLAN_PATH", &dc.BuildPlanPath},
	} {
		if *v.dst = env.Get(v.name); !filepath.IsAbs(*v.dst) {
			return nil, fmt.Errorf("%s must be an absolute path (is the lifecycle running this buildpack?)", v.name)
		}
	}
	return dc, nil
}

func newBuildContext(ctx context.Context, log *Log) (*BuildContext, error) {
	env := Env(os.Environ())
	app, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the app directory: %w", err)
	}
	bc := &BuildContext{Context: ctx, AppDir: app, Env: env, Log: log}
	var planPath string
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"CNB_BUILDPACK_DIR", &bc.BuildpackDir},
		{"CNB_PLATFORM_DIR", &bc.PlatformDir},
		{"CNB_LAYERS_DIR", &bc.LayersDir},
		{"CNB_BP_PLAN_PATH", &planPath},
	} {
		if *v.dst = env.Get(v.name); !filepath.IsAbs(*v.dst) {
			return nil, fmt.Errorf("%s must be an absolute path (is the lifecycle running this buildpack?)", v.name)
		}
	}
	if err := readTOML(planPath, &bc.Plan); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read the buildpack plan: %w", err)
	}
	return bc, nil
}

// AddProcess adds a process type to launch.toml. A later call for the same
// type replaces the earlier one.
func (bc *BuildContext) AddProcess(p Process) {
	for i := range bc.processes {
		if bc.processes[i].Type == p.Type {
			bc.processes[i] = p
			return
		}
	}
	bc.processes = append(bc.processes, p)
}

// Processes returns the process types added so far.
func (bc *BuildContext) Processes() []Process { return append([]Process(nil), bc.processes...) }

// AddLabel adds an image label to launch.toml.
func (bc *BuildContext) AddLabel(key, value string) {
	bc.labels = append(bc.labels, Label{Key: key, Value: value})
}

// AppFile returns the path of a file in the app directory.
func (bc *BuildContext) AppFile(name string) string { return filepath.Join(bc.AppDir, name) }

// AppFile returns the path of a file in the app directory.
func (dc *DetectContext) AppFile(name string) string { return filepath.Join(dc.AppDir, name) }
