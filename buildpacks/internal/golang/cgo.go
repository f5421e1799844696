package golang

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// cgoSetting decides CGO_ENABLED for the build: the app's own build-time
// config var when it set one; else on when a package the targets import
// (outside the standard library, whose cgo is optional) has cgo files, as
// github.com/mattn/go-sqlite3 does and needs; else off, for a static binary
// that depends on nothing in the run image. It says which and why. env is
// the build's environment, GOFLAGS and the module caches set.
func cgoSetting(bc *cnb.BuildContext, env cnb.Env, targets []string) (string, error) {
	if v, ok := bc.Env.Lookup("CGO_ENABLED"); ok {
		v = strings.TrimSpace(v)
		if v != "0" && v != "1" {
			return "", cnb.Failf("CGO_ENABLED=%q: use 1 (cgo on) or 0 (a static binary, no cgo).", v)
		}
		bc.Log.Detail("CGO_ENABLED=%s, as the app's build-time config sets it", v)
		return v, nil
	}
	// -e: a package that does not load is go build's to report, with its
	// own message, not this probe's.
	args := append([]string{"list", "-e", "-deps", "-f", "{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}"}, targets...)
	var stdout bytes.Buffer
	if err := bc.RunTo(&stdout, cnb.Cmd{Name: "go", Args: args, Dir: bc.AppDir, Env: env.With("CGO_ENABLED=1")}); err != nil {
		bc.Log.Detail("Could not list the packages that use cgo (%v); building without cgo", err)
		return "0", nil
	}
	users := strings.Fields(stdout.String())
	if len(users) == 0 {
		bc.Log.Detail("No package uses cgo: a static binary (CGO_ENABLED=0)")
		return "0", nil
	}
	if _, err := bc.Output(cnb.Cmd{Name: "gcc", Args: []string{"--version"}, Env: env}); err != nil {
		return "", cnb.Failf("%s uses cgo, and this builder has no C compiler (gcc).", strings.Join(users, ", ")).
			Hint("Use a builder with gcc, or set CGO_ENABLED=0 as a build-time config var if the packages work without cgo.")
	}
	more := ""
	if len(users) > 3 {
		more = fmt.Sprintf(" and %d more", len(users)-3)
		users = users[:3]
	}
	bc.Log.Detail("cgo on (CGO_ENABLED=1): %s%s use%s it; the binary links the run image's C library", strings.Join(users, ", "), more, map[bool]string{true: "s", false: ""}[len(users) == 1 && more == ""])
	return "1", nil
}
