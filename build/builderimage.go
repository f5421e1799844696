package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/skiffhq/skiff"
)

// Labels of CNB images.
const (
	labelBuilderMetadata = "io.buildpacks.builder.metadata"
	labelBuildpackLayers = "io.buildpacks.buildpack.layers"
	labelBuildpackOrder  = "io.buildpacks.buildpack.order"
	labelStackID         = "io.buildpacks.stack.id"
	labelBuildMetadata   = "io.buildpacks.build.metadata"
	labelLayersMetadata  = "io.buildpacks.lifecycle.metadata"
)

// Supported API versions of the pinned lifecycle (v0.21), stated in the
// builder metadata label for tools that read it.
var (
	buildpackAPIs = []string{"0.7", "0.8", "0.9", "0.10", "0.11", "0.12"}
	platformAPIs  = []string{"0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15"}
)

// BuilderSpec describes a builder image to assemble from images already in
// the store and buildpacks on disk.
type BuilderSpec struct {
	Ref         string // name to give it, e.g. skiff.local/builder:latest
	BaseRef     string // build base image: the root file system, with the CNB user in /etc/passwd
	RunRef      string // run image the builder's apps export onto; must be in the store
	StackID     string // deprecated stack id, for older tools; "" for io.skiff.bookworm
	UID, GID    int    // CNB_USER_ID/CNB_GROUP_ID: the unprivileged build user
	Description string
	// BuildpacksDir holds buildpacks, each a directory with buildpack.toml
	// and bin/ (found at any depth, e.g. DIR/<id>/<version>/), and an
	// order.toml saying which groups to try; without one, each buildpack is
	// tried alone in the directory's order.
	BuildpacksDir string
}

// CreateBuilderImage assembles a CNB builder image: the base's layers, one
// layer with the lifecycle, one per buildpack and one with the builder's
// configuration (/cnb/order.toml, run.toml, stack.toml, and /workspace,
// /layers, /platform owned by the build user), labelled as pack labels its
// builders. It returns the image's digest.
func (p *Platform) CreateBuilderImage(ctx context.Context, spec BuilderSpec) (v1.Hash, error) {
	lf, err := loadLifecycle(p.cfg.LifecycleDir)
	if err != nil {
		return v1.Hash{}, err
	}
	if spec.StackID == "" {
		spec.StackID = "io.skiff.bookworm"
	}
	base, err := p.store.Image(spec.BaseRef)
	if err != nil {
		return v1.Hash{}, skiff.Errorf(skiff.EUNAVAILABLE, "build base image %s: %v", spec.BaseRef, err)
	}
	if _, err := p.store.Resolve(spec.RunRef); err != nil {
		return v1.Hash{}, skiff.Errorf(skiff.EUNAVAILABLE, "run image %s is not in the image store: %v", spec.RunRef, err)
	}
	bps, err := findBuildpacks(spec.BuildpacksDir)
	if err != nil {
		return v1.Hash{}, err
	}
	order, err := readOrder(spec.BuildpacksDir, bps)
	if err != nil {
		return v1.Hash{}, err
	}

	lcLayer, err := p.lifecycleLayer(ctx, lf)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("lifecycle layer: %w", err)
	}
	adds := []mutate.Addendum{{Layer: lcLayer, History: v1.History{CreatedBy: "skiff: lifecycle " + lf.Version}}}
	bpAdds, layersLabel, err := p.buildpackLayers(ctx, bps)
	if err != nil {
		return v1.Hash{}, err
	}
	adds = append(adds, bpAdds...)
	files, err := builderConfigFiles(order, spec.RunRef)
	if err != nil {
		return v1.Hash{}, err
	}
	cfgLayer, err := p.builderConfigLayer(ctx, files, spec.UID, spec.GID)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("builder config layer: %w", err)
	}
	adds = append(adds, mutate.Addendum{Layer: cfgLayer, History: v1.History{CreatedBy: "skiff: builder configuration"}})

	img, err := mutate.Append(base, adds...)
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	labels := map[string]any{
		labelBuilderMetadata: builderMetadataLabel(spec, bps, lf.Version),
		labelBuildpackLayers: layersLabel,
		labelBuildpackOrder:  order.Order,
	}
	cfg, err := builderImageConfig(cf.Config, spec, labels)
	if err != nil {
		return v1.Hash{}, err
	}
	if img, err = mutate.Config(img, *cfg); err != nil {
		return v1.Hash{}, err
	}
	return p.store.Put(ctx, spec.Ref, img)
}

// lifecycleLayer is the builder's layer of /cnb/lifecycle: the lifecycle,
// the launcher, a link per phase and lifecycle.toml.
func (p *Platform) lifecycleLayer(ctx context.Context, lf *LifecycleFiles) (v1.Layer, error) {
	return p.store.PutLayer(ctx, func(w io.Writer) error {
		t := newTarBuilder(w)
		for _, name := range []string{"lifecycle", "launcher"} {
			if err := t.fileFrom("/cnb/lifecycle/"+name, 0o755, lf.fsys, name); err != nil {
				return fmt.Errorf("lifecycle layer: %w", err)
			}
		}
		for _, ph := range lifecyclePhases {
			if err := t.symlink("/cnb/lifecycle/"+ph, "lifecycle"); err != nil {
				return err
			}
		}
		if err := t.file("/cnb/lifecycle/lifecycle.toml", 0o644, lifecycleDescriptor(lf.Version)); err != nil {
			return err
		}
		return t.close()
	})
}

// buildpackLayers makes one layer per buildpack, so that builders sharing
// one share its blob, and the io.buildpacks.buildpack.layers label that
// says which layer holds which buildpack.
func (p *Platform) buildpackLayers(ctx context.Context, bps []buildpackDir) ([]mutate.Addendum, map[string]map[string]any, error) {
	var adds []mutate.Addendum
	label := map[string]map[string]any{}
	for _, bp := range bps {
		l, err := p.store.PutLayer(ctx, func(w io.Writer) error {
			t := newTarBuilder(w)
			if err := t.tree(bp.dir, bp.destDir(), false); err != nil {
				return err
			}
			return t.close()
		})
		if err != nil {
			return nil, nil, fmt.Errorf("buildpack %s layer: %w", bp.ID, err)
		}
		diff, err := l.DiffID()
		if err != nil {
			return nil, nil, fmt.Errorf("buildpack %s layer: %w", bp.ID, err)
		}
		if label[bp.ID] == nil {
			label[bp.ID] = map[string]any{}
		}
		label[bp.ID][bp.Version] = map[string]any{"api": bp.API, "layerDiffID": diff.String(), "homepage": ""}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "skiff: buildpack " + bp.ID + "@" + bp.Version}})
	}
	return adds, label, nil
}

// builderConfigLayer is the builder's own configuration: files (order.toml,
// run.toml, stack.toml), the empty /cnb directories, and /workspace and
// /layers owned by the build user (uid:gid).
func (p *Platform) builderConfigLayer(ctx context.Context, files map[string][]byte, uid, gid int) (v1.Layer, error) {
	return p.store.PutLayer(ctx, func(w io.Writer) error {
		t := newTarBuilder(w)
		for _, d := range []string{"/cnb/buildpacks", "/cnb/extensions"} {
			if err := t.dir(d, 0o755, 0, 0); err != nil {
				return err
			}
		}
		for _, d := range []string{"/workspace", "/layers"} {
			if err := t.dir(d, 0o755, uid, gid); err != nil {
				return err
			}
		}
		if err := t.dir("/platform/env", 0o755, 0, 0); err != nil {
			return err
		}
		// In a fixed order, so that the same builder makes the same layer.
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if err := t.file(name, 0o644, files[name]); err != nil {
				return err
			}
		}
		return t.close()
	})
}

// builderImageConfig is the base's image config made a builder's: the
// CNB user's ids and the stack in the environment, that user, /workspace,
// and labels (each JSON-encoded) with the stack id.
func builderImageConfig(base v1.Config, spec BuilderSpec, labels map[string]any) (*v1.Config, error) {
	cfg := base.DeepCopy()
	cfg.Env = setEnv(cfg.Env, "CNB_USER_ID", strconv.Itoa(spec.UID))
	cfg.Env = setEnv(cfg.Env, "CNB_GROUP_ID", strconv.Itoa(spec.GID))
	cfg.Env = setEnv(cfg.Env, "CNB_STACK_ID", spec.StackID)
	cfg.User = fmt.Sprintf("%d:%d", spec.UID, spec.GID)
	cfg.WorkingDir = "/workspace"
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	for k, v := range labels {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		cfg.Labels[k] = string(b)
	}
	cfg.Labels[labelStackID] = spec.StackID
	return cfg, nil
}

// builderConfigFiles renders the builder's /cnb/order.toml, /cnb/run.toml
// and /cnb/stack.toml.
func builderConfigFiles(order *orderTOML, runRef string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for name, v := range map[string]any{
		"/cnb/order.toml": order,
		"/cnb/run.toml":   runTOML{Images: []runImageRef{{Image: runRef}}},
		"/cnb/stack.toml": stackTOML{RunImage: runImageRef{Image: runRef}},
	} {
		b, err := encodeTOML(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		files[name] = b
	}
	return files, nil
}

// lifecycleDescriptor renders /cnb/lifecycle/lifecycle.toml, which pack
// and other platforms read to learn the lifecycle's APIs; [api] holds the
// oldest supported ones, in the older descriptor format (RFC 0011).
func lifecycleDescriptor(version string) []byte {
	return fmt.Appendf(nil, "[apis]\n[apis.buildpack]\n  deprecated = []\n  supported = %s\n[apis.platform]\n  deprecated = []\n  supported = %s\n\n[api]\n  platform = %q\n  buildpack = %q\n\n[lifecycle]\n  version = %q\n",
		tomlList(buildpackAPIs), tomlList(platformAPIs), platformAPIs[0], buildpackAPIs[0], version)
}

// builderMetadataLabel is the io.buildpacks.builder.metadata label, in the
// shape pack gives it, which tools and skiff's own builder reading expect.
func builderMetadataLabel(spec BuilderSpec, bps []buildpackDir, lifecycleVersion string) map[string]any {
	var bpList []map[string]string
	for _, bp := range bps {
		bpList = append(bpList, map[string]string{"id": bp.ID, "version": bp.Version})
	}
	return map[string]any{
		"description": spec.Description,
		"stack":       map[string]any{"runImage": runImageRef{Image: spec.RunRef}},
		"images":      []runImageRef{{Image: spec.RunRef}},
		"buildpacks":  bpList,
		"lifecycle": map[string]any{
			"version": lifecycleVersion,
			"api":     map[string]string{"buildpack": buildpackAPIs[0], "platform": platformAPIs[0]},
			"apis": map[string]any{
				"buildpack": map[string]any{"deprecated": []string{}, "supported": buildpackAPIs},
				"platform":  map[string]any{"deprecated": []string{}, "supported": platformAPIs},
			},
		},
		"createdBy": map[string]string{"name": "skiff", "version": skiff.Version},
	}
}

// buildpackDir is a buildpack found on disk.
type buildpackDir struct {
	ID, Version, API string
	dir              string
}

// destDir is where the buildpack lives in a builder: the CNB layout
// /cnb/buildpacks/<id with / as _>/<version>.
func (b buildpackDir) destDir() string {
	return path.Join("/cnb/buildpacks", strings.ReplaceAll(b.ID, "/", "_"), b.Version)
}

func findBuildpacks(dir string) ([]buildpackDir, error) {
	var out []buildpackDir
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "buildpack.toml" {
			return nil
		}
		var bt buildpackTOML
		if _, err := toml.DecodeFile(p, &bt); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if bt.Buildpack.ID == "" || bt.Buildpack.Version == "" {
			return fmt.Errorf("%s: buildpack id and version are required", p)
		}
		out = append(out, buildpackDir{ID: bt.Buildpack.ID, Version: bt.Buildpack.Version, API: bt.API, dir: filepath.Dir(p)})
		return filepath.SkipDir
	})
	if err != nil {
		return nil, fmt.Errorf("find buildpacks in %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no buildpacks (buildpack.toml) in %s", dir)
	}
	return out, nil
}

func readOrder(dir string, bps []buildpackDir) (*orderTOML, error) {
	var o orderTOML
	if _, err := toml.DecodeFile(filepath.Join(dir, "order.toml"), &o); err == nil {
		for _, g := range o.Order {
			for _, ref := range g.Group {
				if !hasBuildpack(bps, ref.ID) {
					return nil, fmt.Errorf("order.toml names %s, which is not in %s", ref.ID, dir)
				}
			}
		}
		return &o, nil
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("read order.toml: %w", err)
	}
	for _, bp := range bps {
		o.Order = append(o.Order, orderGroup{Group: []buildpackRef{{ID: bp.ID, Version: bp.Version}}})
	}
	return &o, nil
}

func hasBuildpack(bps []buildpackDir, id string) bool {
	for _, bp := range bps {
		if bp.ID == id {
			return true
		}
	}
	return false
}

func setEnv(env []string, k, v string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, k+"=") {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

func tomlList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
