package build

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/skiffhq/skiff"
)

// The contract with the lifecycle: skiff declares its own structs for the
// lifecycle's files (see the package doc), so each file that crosses
// between the two is a golden file under testdata/contract, checked from
// both sides. This side writes the files skiff writes and compares them
// with the golden copies, and reads the files the lifecycle writes with
// skiff's structs; tools/lifecycle/contract reads the first kind with the
// lifecycle's own types and writes the second kind with them. A field
// renamed or dropped on either side fails one of the two.

var update = flag.Bool("update", false, "rewrite the golden files of testdata/contract that skiff writes")

const contractDir = "testdata/contract"

// checkGolden compares what skiff writes with testdata/contract/name.
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
		t.Fatalf("%v (write it with go test ./build -run TestContract -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("skiff now writes %s differently; if that is meant, run go test ./build -run TestContract -update, then (cd tools/lifecycle && go test ./...) to check the lifecycle still reads it\n--- skiff writes:\n%s\n--- %s:\n%s", name, got, p, want)
	}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(contractDir, name))
	if err != nil {
		t.Fatalf("%v (see %s/README.md for who writes it)", err, contractDir)
	}
	return b
}

// pinnedLifecycleVersion is the lifecycle version tools/lifecycle/go.mod
// pins, which scripts/build-lifecycle.sh stamps into the binaries.
func pinnedLifecycleVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../tools/lifecycle/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/buildpacks/lifecycle v(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("tools/lifecycle/go.mod pins no github.com/buildpacks/lifecycle version")
	}
	return string(m[1])
}

// The default builder's buildpacks, and its order as the buildpacks
// package lays it out for CreateBuilderImage (each language with the
// Procfile buildpack as an optional follower, then a bare Procfile).
var (
	contractBuildpacks = []buildpackDir{
		{ID: "skiff/procfile", Version: "0.1.0", API: "0.10"},
		{ID: "skiff/static", Version: "0.1.0", API: "0.10"},
		{ID: "skiff/nodejs", Version: "0.1.0", API: "0.10"},
		{ID: "skiff/go", Version: "0.1.0", API: "0.10"},
		{ID: "skiff/python", Version: "0.1.0", API: "0.10"},
	}
	contractOrderInput = `[[order]]
  [[order.group]]
    id = "skiff/go"
    version = "0.1.0"
  [[order.group]]
    id = "skiff/procfile"
    version = "0.1.0"
    optional = true
[[order]]
  [[order.group]]
    id = "skiff/nodejs"
    version = "0.1.0"
  [[order.group]]
    id = "skiff/procfile"
    version = "0.1.0"
    optional = true
[[order]]
  [[order.group]]
    id = "skiff/procfile"
    version = "0.1.0"
`
)

const contractRunImage = "skiff.local/run:latest"

// TestContractSkiffWrites: the files and labels skiff writes for the
// lifecycle and for builder tools, as the golden files hold them.
func TestContractSkiffWrites(t *testing.T) {
	version := pinnedLifecycleVersion(t)

	bpDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(bpDir, "order.toml"), []byte(contractOrderInput), 0o644); err != nil {
		t.Fatal(err)
	}
	order, err := readOrder(bpDir, contractBuildpacks)
	if err != nil {
		t.Fatal(err)
	}
	files, err := builderConfigFiles(order, contractRunImage)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, []string{"/cnb/order.toml", "/cnb/run.toml", "/cnb/stack.toml"}) {
		t.Fatalf("builder configuration files %v: the contract covers order, run and stack", got)
	}
	checkGolden(t, "order.toml", files["/cnb/order.toml"])
	checkGolden(t, "run.toml", files["/cnb/run.toml"])
	checkGolden(t, "stack.toml", files["/cnb/stack.toml"])
	checkGolden(t, "lifecycle.toml", lifecycleDescriptor(version))

	// <layers>/order.toml for buildpacks the app pins, one by id alone.
	rootfs := t.TempDir()
	for _, d := range []string{"skiff_nodejs/0.1.0", "skiff_procfile/0.1.0"} {
		if err := os.MkdirAll(filepath.Join(rootfs, "cnb", "buildpacks", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pinned, err := pinnedOrder(rootfs, []string{"skiff/nodejs", "skiff/procfile@0.1.0"}, "skiff/builder")
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodeTOML(pinned)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "order-pinned.toml", b)

	label, err := json.Marshal(builderMetadataLabel(BuilderSpec{RunRef: contractRunImage, Description: "skiff's default builder"}, contractBuildpacks, version))
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, label, "", "  "); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "builder-metadata.json", append(indented.Bytes(), '\n'))
}

// TestContractLifecycleWrites: what the lifecycle writes, as
// tools/lifecycle/contract makes it with the lifecycle's own types, read
// with skiff's structs and code.
func TestContractLifecycleWrites(t *testing.T) {
	// The exporter's io.buildpacks.build.metadata label and entrypoint.
	var res skiff.BuildResult
	if err := resultFromImage(&res, string(readGolden(t, "build-metadata.json")), []string{"/cnb/process/web"}); err != nil {
		t.Fatal(err)
	}
	wantTypes := map[string]string{
		"web":    "node server.js",
		"worker": "node worker.js --queue default",
	}
	if !maps.Equal(res.ProcessTypes, wantTypes) {
		t.Errorf("process types %q, want %q", res.ProcessTypes, wantTypes)
	}
	if want := []string{"skiff/nodejs@0.1.0", "skiff/procfile@0.1.0"}; !slices.Equal(res.Buildpacks, want) {
		t.Errorf("buildpacks %q, want %q", res.Buildpacks, want)
	}
	if res.DefaultProcess != "web" {
		t.Errorf("default process %q, want web", res.DefaultProcess)
	}

	// A buildpack descriptor, read as builder:create reads the buildpacks.
	dir := filepath.Join(t.TempDir(), "skiff_nodejs", "0.1.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "buildpack.toml"), readGolden(t, "buildpack.toml"), 0o644); err != nil {
		t.Fatal(err)
	}
	bps, err := findBuildpacks(filepath.Dir(filepath.Dir(dir)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (buildpackDir{ID: "skiff/nodejs", Version: "0.1.0", API: "0.10", dir: dir}); len(bps) != 1 || bps[0] != want {
		t.Errorf("buildpacks %+v, want %+v", bps, want)
	}
}

// TestContractProjectDescriptor: project.toml is the app author's, in
// schema 0.1 or 0.2 of the project descriptor as pack reads them; the
// lifecycle has no type for it, so these golden files are written by hand
// from the spec and pack's parser, and checked from this side only.
func TestContractProjectDescriptor(t *testing.T) {
	for _, c := range []struct {
		file             string
		bps              []string
		env              map[string]string
		include, exclude []string
	}{
		{"project-v01.toml", []string{"skiff/go@0.1.0", "skiff/procfile"}, map[string]string{"GOFLAGS": "-mod=vendor"}, []string{"cmd/", "go.mod", "go.sum", "*.go"}, nil},
		{"project-v02.toml", []string{"skiff/nodejs@0.1.0", "skiff/procfile"}, map[string]string{"NODE_ENV": "production", "NPM_CONFIG_LOGLEVEL": "warn"}, nil, []string{"spec/", "*.log"}},
		{"project-v02-env-build.toml", []string{"skiff/python"}, map[string]string{"PIP_NO_CACHE_DIR": "1"}, nil, nil},
	} {
		var pt projectTOML
		if err := parseProject(readGolden(t, c.file), &pt); err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		if got := pt.buildpacks(); !slices.Equal(got, c.bps) {
			t.Errorf("%s: buildpacks %q, want %q", c.file, got, c.bps)
		}
		if got := pt.env(); !maps.Equal(got, c.env) {
			t.Errorf("%s: env %q, want %q", c.file, got, c.env)
		}
		s := pt.section()
		if !slices.Equal(s.Include, c.include) || !slices.Equal(s.Exclude, c.exclude) {
			t.Errorf("%s: include %q exclude %q, want %q and %q", c.file, s.Include, s.Exclude, c.include, c.exclude)
		}
	}
}

func TestCommandText(t *testing.T) {
	for _, tc := range []struct {
		command, args []string
		want          string
	}{
		{[]string{"bash", "-c", `exec python3 -m http.server "$PORT"`}, nil, `exec python3 -m http.server "$PORT"`},
		{[]string{"/workspace/bin/app"}, []string{"--port", "$PORT"}, `/workspace/bin/app --port '$PORT'`},
		{[]string{"node", "worker.js"}, []string{"--name", "it's here", ""}, `node worker.js --name 'it'\''s here' ''`},
		{[]string{"bash", "-c", "x"}, []string{"y"}, "bash -c x y"},
	} {
		if got := commandText(tc.command, tc.args); got != tc.want {
			t.Errorf("commandText(%q, %q) = %s, want %s", tc.command, tc.args, got, tc.want)
		}
	}
}

// TestContractBuildCache: the files the build cache reads from the
// lifecycle and from buildpacks, and the <layer>.toml it writes, which
// must be the restorer's.
func TestContractBuildCache(t *testing.T) {
	var g groupTOML
	if err := decodeTOML(readGolden(t, "group.toml"), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Group) != 2 || g.Group[0].ID != "skiff/nodejs" || g.Group[1].ID != "skiff/procfile" {
		t.Errorf("group.toml reads as %+v", g)
	}
	var lt layerTOML
	if err := decodeTOML(readGolden(t, "layer.toml"), &lt); err != nil {
		t.Fatal(err)
	}
	if !lt.Types.Cache || !lt.Types.Launch || !lt.Types.Build || lt.Metadata["version"] != "24.22.3" {
		t.Errorf("layer.toml reads as %+v", lt)
	}
	got, err := encodeTOML(restoredLayerTOML{Metadata: lt.Metadata})
	if err != nil {
		t.Fatal(err)
	}
	if want := readGolden(t, "layer-restored.toml"); !bytes.Equal(got, want) {
		t.Errorf("the cache writes a cached layer's toml as\n%s\nthe lifecycle's restorer as\n%s", got, want)
	}
	var md layersMetadata
	if err := json.Unmarshal(readGolden(t, "lifecycle-metadata.json"), &md); err != nil {
		t.Fatal(err)
	}
	if md.SBOM == nil || md.SBOM.SHA != "sha256:2222222222222222222222222222222222222222222222222222222222222222" {
		t.Errorf("lifecycle-metadata.json: the SBOM layer reads as %+v", md.SBOM)
	}
}
