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
	// Engines holds engines.yarn and engines.pnpm (ranges), when set.
	Engines map[string]string
	// InstallFields is the canonical JSON of the fields that change what
	// an install does (dependencies of every kind, overrides, resolutions,
	// workspaces, install scripts): what node_modules is keyed on besides
	// the lockfile, so that a new version or start script reuses it.
	InstallFields []byte
}

// installFields are the package.json fields an install depends on.
var installFields = []string{"dependencies", "devDependencies", "optionalDependencies", "peerDependencies",
	"bundleDependencies", "bundledDependencies", "overrides", "resolutions", "pnpm", "workspaces", "dependenciesMeta", "packageManager"}

// installScripts are the scripts an install runs.
var installScripts = []string{"preinstall", "install", "postinstall", "prepare"}

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
	pj := &PackageJSON{Scripts: map[string]string{}, HasDeps: len(raw.Dependencies)+len(raw.DevDependencies) > 0, Engines: map[string]string{}}
	var yarnRange, pnpmRange string
	for _, e := range []struct {
		key string
		dst *string
	}{{"node", &pj.NodeRange}, {"npm", &pj.NPMRange}, {"yarn", &yarnRange}, {"pnpm", &pnpmRange}} {
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
	for k, v := range map[string]string{"yarn": yarnRange, "pnpm": pnpmRange} {
		if v != "" {
			pj.Engines[k] = v
		}
	}
	if s, ok := raw.PackageManager.(string); ok {
		pj.PackageManager = s
	}
	var all map[string]json.RawMessage
	_ = json.Unmarshal(data, &all) // the document parsed already; this is the same bytes
	key := map[string]any{}
	for _, f := range installFields {
		if v, ok := all[f]; ok {
			key[f] = v
		}
	}
	for _, sc := range installScripts {
		if v, ok := pj.Scripts[sc]; ok {
			key["scripts."+sc] = v
		}
	}
	// Map keys marshal sorted, and RawMessage values are compacted: the
	// same fields give the same bytes whatever the file's layout.
	pj.InstallFields, _ = json.Marshal(key)
	return pj, nil
}
