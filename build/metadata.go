package build

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiffhq/skiff"
)

// buildMetadata is the part of the io.buildpacks.build.metadata label skiff
// reads.
type buildMetadata struct {
	Processes []struct {
		Type    string   `json:"type"`
		Command []string `json:"command"` // platform API ≥ 0.10: an array
		Args    []string `json:"args"`
		Direct  bool     `json:"direct"`
	} `json:"processes"`
	Buildpacks []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"buildpacks"`
}

// layersMetadata is the part of the io.buildpacks.lifecycle.metadata label
// (the exporter's record of the image's layers) skiff reads.
type layersMetadata struct {
	SBOM *struct {
		SHA string `json:"sha"`
	} `json:"sbom,omitempty"`
}

// sbomLayer returns the blob digest of the image's launch SBOM layer, the
// one layer of a previous image whose content the lifecycle reads (the
// analyzer restores the SBOMs from it); false when it has none.
func sbomLayer(img v1.Image) (v1.Hash, bool) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, false
	}
	var md layersMetadata
	if json.Unmarshal([]byte(cf.Config.Labels[labelLayersMetadata]), &md) != nil || md.SBOM == nil {
		return v1.Hash{}, false
	}
	m, err := img.Manifest()
	if err != nil {
		return v1.Hash{}, false
	}
	for i, d := range cf.RootFS.DiffIDs {
		if d.String() == md.SBOM.SHA && i < len(m.Layers) {
			return m.Layers[i].Digest, true
		}
	}
	return v1.Hash{}, false
}

// readResult fills process types, the default process and the buildpacks
// from the exported image.
func (p *Platform) readResult(res *skiff.BuildResult) error {
	img, err := p.store.Image(res.Image)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	return resultFromImage(res, cf.Config.Labels[labelBuildMetadata], cf.Config.Entrypoint)
}

// resultFromImage reads what the lifecycle's exporter wrote into the image:
// the io.buildpacks.build.metadata label and the entrypoint.
func resultFromImage(res *skiff.BuildResult, label string, entrypoint []string) error {
	var md buildMetadata
	if label != "" {
		if err := json.Unmarshal([]byte(label), &md); err != nil {
			return fmt.Errorf("read %s label: %w", labelBuildMetadata, err)
		}
	}
	res.ProcessTypes = map[string]string{}
	for _, pr := range md.Processes {
		res.ProcessTypes[pr.Type] = commandText(pr.Command, pr.Args)
	}
	for _, bp := range md.Buildpacks {
		res.Buildpacks = append(res.Buildpacks, bp.ID+"@"+bp.Version)
	}
	// The default process is the image's entrypoint /cnb/process/<type>.
	if len(entrypoint) == 1 && strings.HasPrefix(entrypoint[0], "/cnb/process/") {
		res.DefaultProcess = path.Base(entrypoint[0])
	}
	return nil
}

// BuilderBuildpacks lists the buildpacks (id@version) a builder holds, from
// its labels (see builderBuildpacks): what buildpacks:add may pin.
func (p *Platform) BuilderBuildpacks(ref string) ([]string, error) {
	img, err := p.store.Image(ref)
	if err != nil {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "builder %s is not in the image store", ref)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	have := builderBuildpacks(cf.Config.Labels)
	if len(have) == 0 {
		return nil, skiff.Errorf(skiff.EINVALID, "builder %s has no readable %s label", ref, labelBuilderMetadata)
	}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(have)) {
		for _, v := range have[id] {
			out = append(out, id+"@"+v)
		}
	}
	return out, nil
}

// commandText shows a process's command as a user wrote it: a Procfile
// line that a buildpack wrapped in `bash -c` is shown as the line, and other
// words are quoted where the shell would need it.
func commandText(command, args []string) string {
	if len(command) == 3 && len(args) == 0 && command[1] == "-c" {
		switch command[0] {
		case "bash", "sh", "/bin/bash", "/bin/sh":
			return command[2]
		}
	}
	words := append(append([]string{}, command...), args...)
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n'\"\\$`|&;<>()*?[]#~") {
			words[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(words, " ")
}
