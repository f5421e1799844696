package python

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// maxRequirements bounds requirements.txt and pyproject.toml.
const maxRequirements = 1 << 20

var reqNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`)

var separatorsRE = regexp.MustCompile(`[-_.]+`)

// normalize is PEP 503's name normalization.
func normalize(name string) string {
	return separatorsRE.ReplaceAllString(strings.ToLower(name), "-")
}

// hasEntries reports whether a requirements file asks for anything: a line
// that is neither blank nor a comment.
func hasEntries(data string) bool {
	for _, line := range strings.Split(data, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// RequirementNames returns the normalized project names a requirements.txt
// asks for directly. Options (-r, -e, --index-url), URLs and paths are
// skipped: pip reads them, this only looks for well-known packages.
func RequirementNames(data string) []string {
	var names []string
	for _, line := range strings.Split(strings.ReplaceAll(data, "\\\n", " "), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "-") || strings.Contains(line, "://") || strings.HasPrefix(line, ".") || strings.HasPrefix(line, "/") {
			continue
		}
		if name := reqNameRE.FindString(line); name != "" {
			names = append(names, normalize(name))
		}
	}
	return names
}

// pyproject is the part of pyproject.toml the buildpack reads.
type pyproject struct {
	Project *struct {
		Name         string   `toml:"name"`
		Dependencies []string `toml:"dependencies"`
	} `toml:"project"`
	Tool struct {
		Poetry map[string]any `toml:"poetry"`
		UV     map[string]any `toml:"uv"`
	} `toml:"tool"`
}

// ParsePyproject returns the [project] dependencies of a pyproject.toml.
// A Poetry project without a [project] table has its dependencies where
// pip cannot see them: that is an error with the fix.
func ParsePyproject(data []byte) ([]string, error) {
	if len(data) > maxRequirements {
		return nil, fmt.Errorf("pyproject.toml is larger than %d KiB", maxRequirements>>10)
	}
	var p pyproject
	if err := cnb.DecodeTOML(data, &p); err != nil {
		return nil, cnb.Failf("pyproject.toml is not valid TOML: %v", err)
	}
	if p.Project == nil {
		if p.Tool.Poetry != nil {
			return nil, cnb.Failf("pyproject.toml is a Poetry project without a [project] table, which pip cannot install from").
				Hint("Export the dependencies (poetry export -o requirements.txt) and commit requirements.txt.")
		}
		return nil, nil
	}
	for _, d := range p.Project.Dependencies {
		if d = strings.TrimSpace(d); d == "" || !reqNameRE.MatchString(d) {
			return nil, cnb.Failf("pyproject.toml: %q is not a dependency specifier", d).Hint(`List dependencies like "flask>=3.0".`)
		}
	}
	return p.Project.Dependencies, nil
}
