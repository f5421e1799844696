// Package e2etest is what the end-to-end tiers (e2e, e2e/k8s) share: the
// programs `make build` makes, built into a scratch directory; a `skiff
// serve` process's flags and ready file; SSH identities; the OpenSSH and
// git clients' arguments and environment; git work trees; a log buffer.
// The tiers' harnesses keep their own daemon types (one starts daemons
// per test, the other one daemon inside a cluster's network) on top of it.
package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Root is the module's directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Build makes skiff into dir as `make build` does and returns its path.
// With apps (tests that build and run apps, as root) it also makes the
// lifecycle skiff embeds and the programs beside it (skiff-buildpack,
// skiff-init: static). Builds' output goes to stderr.
func Build(dir string, apps bool) (string, error) {
	root := Root()
	skiff := filepath.Join(dir, "skiff")
	type step struct {
		argv []string
		cgo  string
	}
	var steps []step
	if apps {
		steps = append(steps, step{[]string{filepath.Join(root, "scripts", "build-lifecycle.sh")}, "1"},
			step{[]string{"go", "build", "-trimpath", "-o", filepath.Join(dir, "skiff-buildpack"), "./buildpacks/cmd/skiff-buildpack"}, "0"},
			step{[]string{"go", "build", "-trimpath", "-o", filepath.Join(dir, "skiff-init"), "./cmd/skiff-init"}, "0"},
			step{[]string{"go", "build", "-trimpath", "-o", filepath.Join(dir, "skiff-hook"), "./cmd/skiff-hook"}, "0"})
	}
	steps = append(steps, step{[]string{"go", "build", "-o", skiff, "./cmd/skiff"}, "1"})
	for _, s := range steps {
		cmd := exec.Command(s.argv[0], s.argv[1:]...) //nolint:gosec // the module's own build
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+s.cgo)
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("%v: %w", s.argv, err)
		}
	}
	return skiff, nil
}
