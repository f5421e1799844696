package nodejs

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

// maxPackageJSON bounds package.json: real ones are a few KiB.
const maxPackageJSON = 1 << 20

// PackageJSON is what the buildpack reads from package.json.
type PackageJSON struct {
	NodeRange      string // engines.node, "" when absent
	NPMRange       string // engines.npm
	Scripts        map[string]string
	PackageManager string // "packageManager", e.g. "yarn@4.1.0"
	HasDeps        bool
}

// ParsePackageJSON parses package.json strictly enough to report mistakes
// that would otherwise surface as a confusing install failure.
func ParsePackageJSON(data []byte) (*PackageJSON, error) {
	if len(data) > maxPackageJSON {
		return nil, fmt.Errorf("package.json is larger than %d KiB", maxPackageJSON>>10)
	}
	var raw struct {
		Engines         map[string]any `json:"engines"`
		Scripts         map[string]any `json:"scripts"`
		PackageManager  any            `json:"packageManager"`
		Dependencies    map[string]any `json:"dependencies"`
		DevDependencies map[string]any `json:"devDependencies"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("package.json is not valid JSON: %v", err)
	}
	pj := &PackageJSON{Scripts: map[string]string{}, HasDeps: len(raw.Dependencies)+len(raw.DevDependencies) > 0}
	for _, e := range []struct {
		key string
		dst *string
	}{{"node", &pj.NodeRange}, {"npm", &pj.NPMRange}} {
		v, ok := raw.Engines[e.key]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf(`package.json engines.%s must be a string, like "24.x"`, e.key)
		}
		if _, err := semver.ParseRange(s); err != nil {
			return nil, fmt.Errorf(`package.json engines.%s: %v; use a range like "24.x" or ">=20 <25"`, e.key, err)
		}
		*e.dst = s
	}
	names := make([]string, 0, len(raw.Scripts))
	for k := range raw.Scripts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		s, ok := raw.Scripts[k].(string)
		if !ok {
			return nil, fmt.Errorf("package.json scripts.%s must be a string", k)
		}
		pj.Scripts[k] = s
	}
	if s, ok := raw.PackageManager.(string); ok {
		pj.PackageManager = s
	}
	return pj, nil
}
