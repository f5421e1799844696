package build

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// CheckBuildpacks tells whether the builder ref ("" for the default one)
// has every pinned buildpack (an id, or id@version), by the builder image's
// labels in the store: what buildpacks:set checks when a user pins, so that a
// pin the builder cannot honour is refused then, not at the next push. The
// error names the buildpacks the builder has. A build applies the same
// rules to the unpacked builder (pinnedOrder).
func (p *Platform) CheckBuildpacks(ref string, pins []string) error {
	if ref == "" {
		ref = DefaultBuilder
	}
	h, err := p.store.Resolve(ref)
	if err != nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "builder %s is not in the image store; the buildpacks cannot be checked", shortRef(ref))
	}
	img, err := p.store.Image(h.String())
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("builder %s: %w", ref, err)
	}
	have := builderBuildpacks(cf.Config.Labels)
	for _, pin := range pins {
		if err := checkPin(pin, have, shortRef(ref)); err != nil {
			return err
		}
	}
	return nil
}

// builderBuildpacks reads a builder's buildpacks (id → versions) from its
// io.buildpacks.buildpack.layers label, which pack and skiff both write,
// else from the buildpacks of its io.buildpacks.builder.metadata label.
func builderBuildpacks(labels map[string]string) map[string][]string {
	have := map[string][]string{}
	var layers map[string]map[string]json.RawMessage
	if json.Unmarshal([]byte(labels[labelBuildpackLayers]), &layers) == nil {
		for id, versions := range layers {
			have[id] = slices.Sorted(maps.Keys(versions))
		}
	}
	if len(have) > 0 {
		return have
	}
	var meta struct {
		Buildpacks []struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"buildpacks"`
	}
	if json.Unmarshal([]byte(labels[labelBuilderMetadata]), &meta) != nil {
		return have // a builder without readable metadata has no buildpacks to pin
	}
	for _, bp := range meta.Buildpacks {
		have[bp.ID] = append(have[bp.ID], bp.Version)
	}
	return have
}

// checkPin applies pinnedOrder's rules to one pin against a builder's
// buildpacks.
func checkPin(pin string, have map[string][]string, builder string) error {
	if strings.Contains(pin, "://") || strings.HasPrefix(pin, "urn:") || strings.Contains(pin, ":") {
		return skiff.Errorf(skiff.EINVALID, "buildpack %q: only buildpacks in the builder can be used, by id or id@version", pin)
	}
	id, version, _ := strings.Cut(pin, "@")
	if id == "" || strings.Contains(id, "..") || strings.HasPrefix(id, "/") {
		return skiff.Errorf(skiff.EINVALID, "invalid buildpack id %q", pin)
	}
	versions, ok := have[id]
	if !ok {
		ids := slices.Sorted(maps.Keys(have))
		return skiff.Errorf(skiff.EINVALID, "buildpack %s is not in builder %s (it has %s); use one of those, or builder:set a builder that has %s", id, builder, strings.Join(ids, ", "), id)
	}
	if version != "" && !slices.Contains(versions, version) {
		return skiff.Errorf(skiff.EINVALID, "buildpack %s has no version %s in builder %s (it has %s)", id, version, builder, strings.Join(versions, ", "))
	}
	return nil
}
