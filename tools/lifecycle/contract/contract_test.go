package contract

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/api"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/launch"
	"github.com/buildpacks/lifecycle/log"
	"github.com/buildpacks/lifecycle/platform/files"
)

var update = flag.Bool("update", false, "rewrite the golden files of build/testdata/contract that the lifecycle writes")

const (
	contractDir = "../../../build/testdata/contract"
	runImage    = "skiff.local/run:latest"
	// skiff runs the lifecycle at this platform API (build/run.go).
	platformAPI = "0.14"
)

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(contractDir, name))
	if err != nil {
		t.Fatalf("%v (package build's TestContractSkiffWrites writes it: go test ./build -run TestContract -update)", err)
	}
	return b
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join(contractDir, name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (write it with: go test ./contract -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the lifecycle now writes %s differently; if that is meant, run go test ./contract -update here, then go test ./build -run TestContract at the top to check skiff still reads it\n--- the lifecycle writes:\n%s\n--- golden:\n%s", name, got, want)
	}
}

// lifecycleVersion is the version of the lifecycle this module pins and
// these tests compile against, as scripts/build-lifecycle.sh stamps it
// into the binaries (without the v). Test binaries carry no dependency
// versions in their build information, so it is read from go.mod.
func lifecycleVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/buildpacks/lifecycle v(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("tools/lifecycle/go.mod requires no github.com/buildpacks/lifecycle version")
	}
	return string(m[1])
}

// strictTOML decodes a golden file skiff wrote into v, a lifecycle type,
// and fails on a key the lifecycle has no field for or a value that does
// not survive encoding v again: a key skiff writes that the lifecycle
// would not read.
func strictTOML(t *testing.T, name string, v any) {
	t.Helper()
	text := golden(t, name)
	md, err := toml.Decode(string(text), v)
	if err != nil {
		t.Fatalf("%s: the lifecycle's %T cannot read it: %v", name, v, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("%s: the lifecycle's %T has no field for %v", name, v, u)
	}
	var again bytes.Buffer
	if err := toml.NewEncoder(&again).Encode(v); err != nil {
		t.Fatalf("%s: encode %T: %v", name, v, err)
	}
	var a, b map[string]any
	if _, err := toml.Decode(string(text), &a); err != nil {
		t.Fatal(err)
	}
	if _, err := toml.Decode(again.String(), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s does not round-trip through the lifecycle's %T\n--- golden:\n%s\n--- encoded again:\n%s", name, v, text, again.Bytes())
	}
}

// strictJSON is strictTOML for a part of a JSON label.
func strictJSON(t *testing.T, what string, raw json.RawMessage, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s: the lifecycle's %T cannot read %s: %v", what, v, raw, err)
		return
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%s does not round-trip through the lifecycle's %T\n--- golden: %s\n--- encoded again: %s", what, v, raw, again)
	}
}

// orderFile is the shape the lifecycle decodes order.toml into
// (files.TOMLHandler.ReadOrder, whose struct is unexported).
type orderFile struct {
	Order           buildpack.Order `toml:"order"`
	OrderExtensions buildpack.Order `toml:"order-extensions"`
}

func TestSkiffWritesOrder(t *testing.T) {
	procfile := buildpack.GroupElement{ID: "skiff/procfile", Version: "0.1.0"}
	optProcfile := procfile
	optProcfile.Optional = true
	for _, c := range []struct {
		file string
		want buildpack.Order
	}{
		{"order.toml", buildpack.Order{
			{Group: []buildpack.GroupElement{{ID: "skiff/go", Version: "0.1.0"}, optProcfile}},
			{Group: []buildpack.GroupElement{{ID: "skiff/nodejs", Version: "0.1.0"}, optProcfile}},
			{Group: []buildpack.GroupElement{procfile}},
		}},
		{"order-pinned.toml", buildpack.Order{
			{Group: []buildpack.GroupElement{{ID: "skiff/nodejs", Version: "0.1.0"}, procfile}},
		}},
	} {
		strictTOML(t, c.file, &orderFile{})
		// What the detector then works from.
		got, ext, err := files.Handler.ReadOrder(filepath.Join(contractDir, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !reflect.DeepEqual(got, c.want) || len(ext) != 0 {
			t.Errorf("%s: the lifecycle reads order %+v and extensions %+v, want order %+v", c.file, got, ext, c.want)
		}
	}
}

func TestSkiffWritesRunAndStack(t *testing.T) {
	strictTOML(t, "run.toml", &files.Run{})
	run, err := files.Handler.ReadRun(filepath.Join(contractDir, "run.toml"), log.NewDefaultLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if want := (files.Run{Images: []files.RunImageForExport{{Image: runImage}}}); !reflect.DeepEqual(run, want) {
		t.Errorf("the lifecycle reads run.toml as %+v, want %+v", run, want)
	}

	strictTOML(t, "stack.toml", &files.Stack{})
	stack, err := files.Handler.ReadStack(filepath.Join(contractDir, "stack.toml"), log.NewDefaultLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if want := (files.Stack{RunImage: files.RunImageForExport{Image: runImage}}); !reflect.DeepEqual(stack, want) {
		t.Errorf("the lifecycle reads stack.toml as %+v, want %+v", stack, want)
	}
}

// lifecycleAPIs is the [apis] part of lifecycle.toml and the "apis" part
// of the builder metadata label. The lifecycle renders lifecycle.toml from
// a template at release time and has no Go type for it: its api package
// holds the lists.
type lifecycleAPIs struct {
	Buildpack apiSet `toml:"buildpack" json:"buildpack"`
	Platform  apiSet `toml:"platform" json:"platform"`
}

type apiSet struct {
	Deprecated []string `toml:"deprecated" json:"deprecated"`
	Supported  []string `toml:"supported" json:"supported"`
}

type lifecycleInfo struct {
	Version string        `json:"version"`
	APIs    lifecycleAPIs `json:"apis"`
	API     struct {
		Buildpack string `json:"buildpack"`
		Platform  string `json:"platform"`
	} `json:"api"`
}

// checkAPIs compares the API versions skiff declares with those of the
// pinned lifecycle: they are stated by hand in build/builderimage.go, and
// a lifecycle upgrade has to update them.
func checkAPIs(t *testing.T, where string, li lifecycleInfo) {
	t.Helper()
	strs := func(l api.List) []string {
		out := []string{}
		for _, v := range l {
			out = append(out, v.String())
		}
		return out
	}
	for _, c := range []struct {
		what      string
		got, want []string
	}{
		{"buildpack APIs supported", li.APIs.Buildpack.Supported, strs(api.Buildpack.Supported)},
		{"buildpack APIs deprecated", li.APIs.Buildpack.Deprecated, strs(api.Buildpack.Deprecated)},
		{"platform APIs supported", li.APIs.Platform.Supported, strs(api.Platform.Supported)},
		{"platform APIs deprecated", li.APIs.Platform.Deprecated, strs(api.Platform.Deprecated)},
		{"oldest buildpack API", []string{li.API.Buildpack}, strs(api.Buildpack.Supported[:1])},
		{"oldest platform API", []string{li.API.Platform}, strs(api.Platform.Supported[:1])},
		{"lifecycle version", []string{li.Version}, []string{lifecycleVersion(t)}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %s %q, but the pinned lifecycle has %q (build/builderimage.go states them)", where, c.what, c.got, c.want)
		}
	}
	if !slices.Contains(li.APIs.Platform.Supported, platformAPI) {
		t.Errorf("%s: platform API %s, which skiff runs the lifecycle at, is not supported", where, platformAPI)
	}
}

func TestSkiffWritesLifecycleDescriptor(t *testing.T) {
	var d struct {
		APIs lifecycleAPIs `toml:"apis"`
		API  struct {
			Buildpack string `toml:"buildpack"`
			Platform  string `toml:"platform"`
		} `toml:"api"`
		Lifecycle struct {
			Version string `toml:"version"`
		} `toml:"lifecycle"`
	}
	md, err := toml.Decode(string(golden(t, "lifecycle.toml")), &d)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("lifecycle.toml: keys the lifecycle's descriptor does not have: %v", u)
	}
	li := lifecycleInfo{Version: d.Lifecycle.Version, APIs: d.APIs}
	li.API.Buildpack, li.API.Platform = d.API.Buildpack, d.API.Platform
	checkAPIs(t, "lifecycle.toml", li)
}

// The builder metadata label is pack's, not the lifecycle's; its run
// image parts are the lifecycle's types (the exporter writes the same
// shapes into io.buildpacks.lifecycle.metadata), and its API lists must be
// the pinned lifecycle's.
func TestSkiffWritesBuilderMetadata(t *testing.T) {
	var label map[string]json.RawMessage
	if err := json.Unmarshal(golden(t, "builder-metadata.json"), &label); err != nil {
		t.Fatal(err)
	}
	var stack files.Stack
	strictJSON(t, "builder metadata stack", label["stack"], &stack)
	var images []files.RunImageForExport
	strictJSON(t, "builder metadata images", label["images"], &images)
	if stack.RunImage.Image != runImage || len(images) != 1 || images[0].Image != runImage {
		t.Errorf("builder metadata names run image %q and images %+v, want %s", stack.RunImage.Image, images, runImage)
	}
	var bps []buildpack.GroupElement
	strictJSON(t, "builder metadata buildpacks", label["buildpacks"], &bps)
	if len(bps) == 0 || bps[0].ID == "" || bps[0].Version == "" {
		t.Errorf("builder metadata buildpacks %+v: each needs an id and a version", bps)
	}
	var li lifecycleInfo
	strictJSON(t, "builder metadata lifecycle", label["lifecycle"], &li)
	checkAPIs(t, "builder metadata", li)
}

// TestLifecycleWritesBuildMetadata makes the io.buildpacks.build.metadata
// label the way the lifecycle does: the builder writes
// <layers>/config/metadata.toml, the exporter reads it at the platform API
// and marshals it, with the launcher's metadata, into the label.
func TestLifecycleWritesBuildMetadata(t *testing.T) {
	papi := api.MustParse(platformAPI)
	md := &files.BuildMetadata{
		Buildpacks: []buildpack.GroupElement{
			{ID: "skiff/nodejs", Version: "0.1.0", API: "0.10"},
			{ID: "skiff/procfile", Version: "0.1.0", API: "0.10"},
		},
		Processes: []launch.Process{
			// Sorted by type, default cleared, as the builder leaves them.
			{Type: "web", Command: launch.NewRawCommand([]string{"bash", "-c", "node server.js"}), Direct: true, BuildpackID: "skiff/procfile"},
			{Type: "worker", Command: launch.NewRawCommand([]string{"node", "worker.js"}), Args: []string{"--queue", "default"}, Direct: true, BuildpackID: "skiff/nodejs"},
		},
		BuildpackDefaultProcessType: "web",
	}
	for i, p := range md.Processes {
		md.Processes[i] = p.WithPlatformAPI(papi)
	}
	path := filepath.Join(t.TempDir(), "metadata.toml")
	if err := files.Handler.WriteBuildMetadata(path, md); err != nil {
		t.Fatal(err)
	}
	read, err := files.Handler.ReadBuildMetadata(path, papi)
	if err != nil {
		t.Fatal(err)
	}
	// scripts/build-lifecycle.sh stamps the version only.
	read.Launcher = files.LauncherMetadata{Version: lifecycleVersion(t)}
	label, err := json.Marshal(read)
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, label, "", "  "); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "build-metadata.json", append(indented.Bytes(), '\n'))
}

// TestLifecycleWritesBuildpackDescriptor: a buildpack.toml as the
// lifecycle's type encodes it, which builder:create reads.
func TestLifecycleWritesBuildpackDescriptor(t *testing.T) {
	d := buildpack.BpDescriptor{
		WithAPI: "0.10",
		Buildpack: buildpack.BpInfo{BaseInfo: buildpack.BaseInfo{
			ID: "skiff/nodejs", Name: "Node.js", Version: "0.1.0", Homepage: "https://example.com/skiff/nodejs",
		}},
		Targets: []buildpack.TargetMetadata{{OS: "linux", Arch: "amd64", Distros: []buildpack.OSDistro{{Name: "debian", Version: "12"}}}},
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(d); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "buildpack.toml", b.Bytes())

	// And the lifecycle reads it back as it was.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "buildpack.toml"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := buildpack.ReadBpDescriptor(filepath.Join(dir, "buildpack.toml"))
	if err != nil {
		t.Fatal(err)
	}
	back.WithRootDir = ""
	if !reflect.DeepEqual(*back, d) {
		t.Errorf("buildpack.toml reads back as %+v, want %+v", *back, d)
	}
}

// TestLifecycleWritesGroup: <layers>/group.toml as the detector writes it,
// which skiff reads to know whose cached layers to keep.
func TestLifecycleWritesGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "group.toml")
	g := &buildpack.Group{Group: []buildpack.GroupElement{
		{ID: "skiff/nodejs", Version: "0.1.0", API: "0.10", Homepage: "https://example.com/skiff/nodejs"},
		{ID: "skiff/procfile", Version: "0.1.0", API: "0.10", Optional: true},
	}}
	if err := files.Handler.WriteGroup(path, g); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "group.toml", b)
}

// layerTOMLMetadata is the metadata of the layer toml golden files: what a
// buildpack keys a layer's reuse on.
var layerTOMLMetadata = map[string]any{"version": "24.22.3", "lockfile": "sha256:0b4f7241"}

// TestBuildpackLayerTOML: a <layer>.toml as a buildpack writes it (by hand,
// from the buildpack spec: [types] and [metadata]), read with the
// lifecycle's decoder, which skiff's layerTOML mirrors to learn which
// layers to cache.
func TestBuildpackLayerTOML(t *testing.T) {
	lmf, err := buildpack.DecodeLayerMetadataFile(filepath.Join(contractDir, "layer.toml"), "0.10", log.NewDefaultLogger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	want := buildpack.LayerMetadataFile{Data: layerTOMLMetadata, Build: true, Launch: true, Cache: true}
	if !reflect.DeepEqual(lmf, want) {
		t.Errorf("the lifecycle reads layer.toml as %+v, want %+v", lmf, want)
	}
}

// TestLifecycleWritesRestoredLayerTOML: a <layer>.toml as the restorer
// writes it for a layer it restores (metadata, no types), which skiff's
// build cache writes for each cached layer.
func TestLifecycleWritesRestoredLayerTOML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layer.toml")
	if err := buildpack.EncodeLayerMetadataFile(buildpack.LayerMetadataFile{Data: layerTOMLMetadata, Build: true, Cache: true}, path, "0.10"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "layer-restored.toml", b)
}

// TestLifecycleWritesLayersMetadata: the io.buildpacks.lifecycle.metadata
// label as the exporter writes it; skiff reads where the launch SBOM layer
// is, to lend a previous image with that one layer blob.
func TestLifecycleWritesLayersMetadata(t *testing.T) {
	md := files.LayersMetadata{
		App: []files.LayerMetadata{{SHA: "sha256:1111111111111111111111111111111111111111111111111111111111111111"}},
		BOM: &files.LayerMetadata{SHA: "sha256:2222222222222222222222222222222222222222222222222222222222222222"},
		Buildpacks: []buildpack.LayersMetadata{{ID: "skiff/nodejs", Version: "0.1.0", Layers: map[string]buildpack.LayerMetadata{
			"node": {SHA: "sha256:3333333333333333333333333333333333333333333333333333333333333333",
				LayerMetadataFile: buildpack.LayerMetadataFile{Data: layerTOMLMetadata, Build: true, Launch: true, Cache: true}},
		}}},
		Config:       files.LayerMetadata{SHA: "sha256:4444444444444444444444444444444444444444444444444444444444444444"},
		Launcher:     files.LayerMetadata{SHA: "sha256:5555555555555555555555555555555555555555555555555555555555555555"},
		ProcessTypes: files.LayerMetadata{SHA: "sha256:6666666666666666666666666666666666666666666666666666666666666666"},
		RunImage:     files.RunImageForRebase{TopLayer: "sha256:7777777777777777777777777777777777777777777777777777777777777777", Reference: runImage},
	}
	label, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, label, "", "  "); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "lifecycle-metadata.json", append(indented.Bytes(), '\n'))
}
