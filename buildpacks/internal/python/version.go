package python

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Request is the Python an app asks for.
type Request struct {
	Major, Minor int    // 0, 0: no preference
	Patch        int    // -1: any
	Source       string // ".python-version", "runtime.txt", "the default"
	Raw          string // as written
	System       bool   // pyenv's "system": the builder's python3
}

// maxVersionFile bounds .python-version and runtime.txt.
const maxVersionFile = 64 << 10

var versionRE = regexp.MustCompile(`^(?:(?:cpython|python)[-@]?)?([0-9]+)(?:\.([0-9]+)(?:\.([0-9]+))?)?$`)

// ParseVersionFile reads a .python-version as pyenv and uv do: one version
// per line, blank lines and "#" comments skipped, the first entry wins
// ("3.13", "3.13.5", "cpython-3.13", "cpython@3.13", or "system").
// runtime.txt holds Heroku's "python-3.13.5".
func ParseVersionFile(name, data string) (Request, error) {
	if len(data) > maxVersionFile {
		return Request{}, cnb.Failf("%s is larger than %d KiB.", name, maxVersionFile>>10)
	}
	for _, line := range strings.Split(data, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if line == "system" {
			return Request{Source: name, Raw: line, System: true, Patch: -1}, nil
		}
		m := versionRE.FindStringSubmatch(strings.ToLower(line))
		if m == nil || m[2] == "" {
			return Request{}, cnb.Failf("%s asks for Python %q, which is not a version like 3.13 or 3.13.5.", name, line).
				Hint("Write the version alone on a line; lines starting with # are comments.")
		}
		r := Request{Source: name, Raw: line, Patch: -1}
		r.Major, _ = strconv.Atoi(m[1])
		r.Minor, _ = strconv.Atoi(m[2])
		if m[3] != "" {
			r.Patch, _ = strconv.Atoi(m[3])
		}
		if r.Major != 3 {
			return Request{}, cnb.Failf("%s asks for Python %s; skiff builds Python 3 apps.", name, line)
		}
		return r, nil
	}
	return Request{}, cnb.Failf("%s names no Python version.", name).Hint("Put a version like 3.13 on a line of its own.")
}

// ReadRequest returns what the app asks for: .python-version, else
// runtime.txt, else nothing (the default).
func ReadRequest(app string) (Request, error) {
	for _, f := range []string{".python-version", "runtime.txt"} {
		data, err := os.ReadFile(app + "/" + f)
		if err != nil {
			continue
		}
		s := string(data)
		if f == "runtime.txt" {
			s = strings.TrimPrefix(strings.TrimSpace(s), "python-")
		}
		return ParseVersionFile(f, s)
	}
	return Request{Source: "the default", Patch: -1}, nil
}

func (r Request) String() string {
	if r.Patch >= 0 {
		return fmt.Sprintf("%d.%d.%d", r.Major, r.Minor, r.Patch)
	}
	return fmt.Sprintf("%d.%d", r.Major, r.Minor)
}

// Interpreter is a Python the buildpack can build with.
type Interpreter struct {
	Version string // "3.11.2"
	Origin  string // for messages: "the builder's", "Debian 13's packages"
	Suite   string // Debian suite to install it from; "" for the builder's python3
}

func (i Interpreter) minor() string {
	parts := strings.SplitN(i.Version, ".", 3)
	if len(parts) < 2 {
		return i.Version
	}
	return parts[0] + "." + parts[1]
}

// Choose picks the interpreter for r among the builder's python3 and the
// newer Pythons of Debian releases (one per release: only those run from a
// layer on any Debian). A request for a version none of them has is an
// error naming what there is; a patch release other than the one on offer
// is a warning, as distributions move patch releases on.
func Choose(r Request, builder Interpreter, debian []Interpreter, warn func(string, ...any)) (Interpreter, error) {
	all := append([]Interpreter{builder}, debian...)
	if r.System || r.Major == 0 {
		return builder, nil
	}
	want := fmt.Sprintf("%d.%d", r.Major, r.Minor)
	for _, i := range all {
		if i.minor() != want {
			continue
		}
		if r.Patch >= 0 && i.Version != r.String() {
			warn("%s asks for Python %s; the Python %s on offer is %s (%s), which is used", r.Source, r.String(), want, i.Version, i.Origin)
		}
		return i, nil
	}
	var have []string
	for _, i := range all {
		have = append(have, fmt.Sprintf("%s (%s)", i.minor(), i.Origin))
	}
	return Interpreter{}, cnb.Failf("%s asks for Python %s, which this builder does not offer: it has Python %s.", r.Source, r.Raw, strings.Join(have, " and ")).
		Hint("Put one of those in .python-version, like %s.", all[len(all)-1].minor())
}
