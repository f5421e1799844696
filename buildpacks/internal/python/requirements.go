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

// PoetryRoots returns the names of a Poetry project's main dependencies:
// [tool.poetry.dependencies] but python, and [project] dependencies (Poetry
// 2 reads both).
func PoetryRoots(data []byte) ([]string, error) {
	if data == nil {
		return nil, cnb.Failf("The app has poetry.lock but no pyproject.toml.").Hint("Commit pyproject.toml with it.")
	}
	var p pyproject
	if err := cnb.DecodeTOML(data, &p); err != nil {
		return nil, cnb.Failf("pyproject.toml is not valid TOML: %v", err)
	}
	var roots []string
	if deps, ok := p.Tool.Poetry["dependencies"].(map[string]any); ok {
		for name := range deps {
			if normalize(name) != "python" {
				roots = append(roots, normalize(name))
			}
		}
	}
	if p.Project != nil {
		roots = append(roots, RequirementNames(strings.Join(p.Project.Dependencies, "\n"))...)
	}
	return roots, nil
}

// ParsePyproject returns the [project] dependencies of a pyproject.toml.
// A Poetry project without a [project] table has its dependencies where
// pip cannot see them, and without poetry.lock nothing says which versions:
// that is an error with the fix.
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
			return nil, cnb.Failf("pyproject.toml is a Poetry project, and poetry.lock, which says what to install, is missing.").
				Hint("Run poetry lock, commit poetry.lock and push again.")
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
