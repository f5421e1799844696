package build

import (
	"bytes"

	"github.com/BurntSushi/toml"
)

// The few CNB TOML files and labels skiff writes or reads, declared here
// rather than imported from the lifecycle (see the package doc). Field names
// follow the CNB platform and buildpack specs.

// orderTOML is /cnb/order.toml, or <layers>/order.toml for pinned buildpacks.
type orderTOML struct {
	Order []orderGroup `toml:"order" json:"order"`
}

type orderGroup struct {
	Group []buildpackRef `toml:"group" json:"group"`
}

type buildpackRef struct {
	ID       string `toml:"id" json:"id"`
	Version  string `toml:"version,omitempty" json:"version,omitempty"`
	Optional bool   `toml:"optional,omitempty" json:"optional,omitempty"`
}

// runTOML is /cnb/run.toml: where the run image is.
type runTOML struct {
	Images []runImageRef `toml:"images"`
}

type runImageRef struct {
	Image   string   `toml:"image" json:"image"`
	Mirrors []string `toml:"mirrors,omitempty" json:"mirrors,omitempty"`
}

// stackTOML is the deprecated /cnb/stack.toml, still read by older
// lifecycles and platforms.
type stackTOML struct {
	RunImage runImageRef `toml:"run-image"`
}

// buildpackTOML is the part of a buildpack's descriptor that builder:create
// reads.
type buildpackTOML struct {
	API       string `toml:"api"`
	Buildpack struct {
		ID      string `toml:"id"`
		Version string `toml:"version"`
	} `toml:"buildpack"`
}

// projectTOML is the project descriptor (project.toml) of an app, schema
// 0.2 ([io.buildpacks]) or 0.1 ([build]), as pack reads them.
type projectTOML struct {
	IO struct {
		Buildpacks projectIO `toml:"buildpacks"`
	} `toml:"io"`
	Build projectBuild `toml:"build"`
}

// projectIO is schema 0.2's [io.buildpacks].
type projectIO struct {
	Group []projectBuildpack `toml:"group"`
	Build struct {
		Env []projectEnv `toml:"env"` // [[io.buildpacks.build.env]]
	} `toml:"build"`
	// [[io.buildpacks.env.build]], the key pack first documented and still
	// reads when [[io.buildpacks.build.env]] is absent.
	Env struct {
		Build []projectEnv `toml:"build"`
	} `toml:"env"`
	Include []string `toml:"include"`
	Exclude []string `toml:"exclude"`
}

// projectBuild is schema 0.1's [build], and what section makes of either.
type projectBuild struct {
	Buildpacks []projectBuildpack `toml:"buildpacks"`
	Env        []projectEnv       `toml:"env"`
	Include    []string           `toml:"include"`
	Exclude    []string           `toml:"exclude"`
}

type projectBuildpack struct {
	ID      string `toml:"id"`
	Version string `toml:"version"`
	URI     string `toml:"uri"`
}

type projectEnv struct {
	Name  string `toml:"name"`
	Value string `toml:"value"`
}

// encodeTOML renders one of these files as skiff writes it.
func encodeTOML(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// groupTOML is <layers>/group.toml, which the detector writes: the
// buildpacks that ran.
type groupTOML struct {
	Group []buildpackRef `toml:"group"`
}

// layerTOML is <layers>/<buildpack>/<layer>.toml as a buildpack (API 0.6
// and later) writes it.
type layerTOML struct {
	Types struct {
		Build  bool `toml:"build"`
		Launch bool `toml:"launch"`
		Cache  bool `toml:"cache"`
	} `toml:"types"`
	Metadata map[string]any `toml:"metadata"`
}

// restoredLayerTOML is a <layer>.toml as the lifecycle's restorer writes it
// for a layer it restores: the metadata, no types.
type restoredLayerTOML struct {
	Metadata map[string]any `toml:"metadata"`
}

// decodeTOML parses one of these files.
func decodeTOML(b []byte, v any) error {
	_, err := toml.Decode(string(b), v)
	return err
}
