package build

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/skiffhq/skiff"
)

// The lifecycle binaries are embedded, so that skiff stays one binary that
// needs no download site: `make build` runs scripts/build-lifecycle.sh, which
// builds them from the module pinned in tools/lifecycle (a module of its own,
// so that skiff's go.mod does not carry the lifecycle's dependency graph)
// into build/lifecycle/, and then builds skiff. Without that step skiff still
// compiles and tests, and builder creation fails with a message saying what
// to run. Config.LifecycleDir points at binaries on disk instead.
//
//go:embed lifecycle
var embedded embed.FS

// LifecycleFiles are the lifecycle binaries that go into a builder image:
// found, not read. The layer reads them as it writes them (lifecycleLayer),
// 28 MB that a copy in memory would add to the daemon's peak twice over.
type LifecycleFiles struct {
	Version string
	fsys    fs.FS // lifecycle (the multi-call binary: creator, detector, analyzer, …) and launcher
}

// Phases that link to the multi-call lifecycle binary in /cnb/lifecycle.
var lifecyclePhases = []string{"analyzer", "builder", "creator", "detector", "exporter", "extender", "rebaser", "restorer"}

// loadLifecycle finds the binaries in dir, or among those embedded when
// dir is "", and reads their version.
func loadLifecycle(dir string) (*LifecycleFiles, error) {
	var fsys fs.FS
	if dir != "" {
		fsys = os.DirFS(dir)
	} else {
		sub, err := fs.Sub(embedded, "lifecycle")
		if err != nil {
			return nil, err
		}
		fsys = sub
	}
	lf := LifecycleFiles{fsys: fsys}
	var err error
	for _, name := range []string{"lifecycle", "launcher"} {
		var fi fs.FileInfo
		if fi, err = fs.Stat(fsys, name); err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", name)
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		var v []byte
		v, err = fs.ReadFile(fsys, "VERSION")
		lf.Version = strings.TrimSpace(string(v))
	}
	if err != nil {
		where := "this skiff binary was built without them"
		if dir != "" {
			where = "not found in " + dir
		}
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "the CNB lifecycle binaries are missing (%s): run scripts/build-lifecycle.sh (make build does) and rebuild skiff", where)
	}
	if lf.Version == "" {
		return nil, fmt.Errorf("lifecycle VERSION file is empty")
	}
	return &lf, nil
}

// LifecycleVersion is the version of the embedded lifecycle, or "" when
// this skiff was built without it.
func LifecycleVersion() string {
	v, err := fs.ReadFile(embedded, "lifecycle/VERSION")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(v))
}
