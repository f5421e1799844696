package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiffhq/skiff/internal/imagestore"
)

// lifecycleTestdata is the acceptance test data of the lifecycle module
// tools/lifecycle pins, in the Go module cache (go mod download puts it
// there): buildpacks the CNB project wrote to test lifecycles with.
func lifecycleTestdata(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/buildpacks/lifecycle")
	cmd.Dir = "../tools/lifecycle"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download github.com/buildpacks/lifecycle: %v", err)
	}
	var mod struct{ Dir, Version string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v %s", err, out)
	}
	t.Logf("the CNB project's buildpacks from github.com/buildpacks/lifecycle@%s", mod.Version)
	return filepath.Join(mod.Dir, "acceptance", "testdata")
}

// cnbBuildpack is a buildpack (or extension) of the lifecycle's test data
// and where a builder holds it.
type cnbBuildpack struct {
	src, dest        string
	id, version, api string
	// detect, when set, is a bin/detect the builder gives a buildpack that
	// has none (its test runs the build phase alone): a link to it.
	detect string
}

// tarOfBuildpacks lays the buildpacks out as a builder's layer does.
func tarOfBuildpacks(t *testing.T, bps []cnbBuildpack, extra map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdirs := func(p string) {
		var parts []string
		for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
			parts = append([]string{d}, parts...)
		}
		for _, d := range parts {
			if !dirs[d] {
				dirs[d] = true
				tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755})
			}
		}
	}
	for _, bp := range bps {
		err := filepath.WalkDir(bp.src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(bp.src, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, _ := d.Info()
			dest := filepath.Join(bp.dest, rel)
			mkdirs(dest)
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 || strings.HasPrefix(rel, "bin/") {
				mode = 0o755
			}
			tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dest, "/"), Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(data))})
			_, err = tw.Write(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if bp.detect != "" {
			dest := filepath.Join(bp.dest, "bin", "detect")
			mkdirs(dest)
			tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dest, "/"), Typeflag: tar.TypeSymlink, Linkname: bp.detect, Mode: 0o777})
		}
	}
	for p, body := range extra {
		mkdirs(p)
		tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(p, "/"), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// samplesBuilder makes, from the default builder in the daemon's image
// store, a builder that holds the CNB project's buildpacks beside skiff's
// own (their group first, then skiff's order), pushes it and its run image
// to the test registry, and returns its reference. orderExtra is appended
// to /cnb/order.toml.
func samplesBuilder(t *testing.T, d *daemon, tag string, bps []cnbBuildpack, order, orderExtra string) string {
	t.Helper()
	store, err := imagestore.Open(filepath.Join(d.data, "images"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := store.Image("skiff.local/builder:latest")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.builder.metadata"]), &meta); err != nil {
		t.Fatal(err)
	}
	runRef := meta["images"].([]any)[0].(map[string]any)["image"].(string)
	run, err := store.Image(runRef)
	if err != nil {
		t.Fatal(err)
	}
	reg := fullRegistry.Listener.Addr().String()
	newRun := reg + "/cnb/run:" + tag
	push(t, newRun, run)

	// skiff's own order after the samples' group, in TOML.
	var skiffOrder []struct {
		Group []struct {
			ID       string `json:"id"`
			Version  string `json:"version"`
			Optional bool   `json:"optional"`
		} `json:"group"`
	}
	json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.buildpack.order"]), &skiffOrder)
	var o strings.Builder
	o.WriteString(order)
	for _, g := range skiffOrder {
		o.WriteString("[[order]]\n")
		for _, e := range g.Group {
			fmt.Fprintf(&o, "  [[order.group]]\n  id = %q\n  version = %q\n  optional = %v\n", e.ID, e.Version, e.Optional)
		}
	}
	o.WriteString(orderExtra)
	runTOML := fmt.Sprintf("[[images]]\n  image = %q\n", newRun)
	cfgLayer := tarOfBuildpacks(t, nil, map[string]string{"/cnb/order.toml": o.String(), "/cnb/run.toml": runTOML,
		"/cnb/stack.toml": fmt.Sprintf("[run-image]\n  image = %q\n", newRun)})
	bpLayer := tarOfBuildpacks(t, bps, nil)
	img, err := mutate.AppendLayers(base, bpLayer, cfgLayer)
	if err != nil {
		t.Fatal(err)
	}
	// The labels tools read: the buildpacks and the run image.
	var layers map[string]map[string]any
	json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.buildpack.layers"]), &layers)
	diff, _ := bpLayer.DiffID()
	list, _ := meta["buildpacks"].([]any)
	for _, bp := range bps {
		if !strings.HasPrefix(bp.dest, "/cnb/buildpacks/") {
			continue
		}
		if layers[bp.id] == nil {
			layers[bp.id] = map[string]any{}
		}
		layers[bp.id][bp.version] = map[string]any{"api": bp.api, "layerDiffID": diff.String()}
		list = append(list, map[string]string{"id": bp.id, "version": bp.version})
	}
	meta["buildpacks"] = list
	meta["images"] = []map[string]string{{"image": newRun}}
	meta["stack"] = map[string]any{"runImage": map[string]string{"image": newRun}}
	c := cf.Config.DeepCopy()
	for k, v := range map[string]any{"io.buildpacks.builder.metadata": meta, "io.buildpacks.buildpack.layers": layers} {
		b, _ := json.Marshal(v)
		c.Labels[k] = string(b)
	}
	if img, err = mutate.Config(img, *c); err != nil {
		t.Fatal(err)
	}
	ref := reg + "/cnb/samples-builder:" + tag
	push(t, ref, img)
	return ref
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// skiff is a CNB platform for buildpacks it did not write: the CNB
// project's own test buildpacks, in a builder beside skiff's, build an app
// whose image carries what they declare (launch layers, their environment,
// process types, SBOM files) and runs; a buildpack whose detection fails, one
// with a buildpack API the lifecycle does not support, and a builder with an
// image extension fail with messages that say so.
func TestConformanceForeignBuildpacks(t *testing.T) {
	d, admin := fullDaemon(t)
	td := lifecycleTestdata(t)
	bps := []cnbBuildpack{
		{src: filepath.Join(td, "creator/container/cnb/buildpacks/samples_hello-world/0.0.1"), dest: "/cnb/buildpacks/samples_hello-world/0.0.1", id: "samples/hello-world", version: "0.0.1", api: "0.7"},
		{src: filepath.Join(td, "builder/container/cnb/buildpacks/hello_world/0.0.1"), dest: "/cnb/buildpacks/hello_world/0.0.1", id: "hello_world", version: "0.0.1", api: "0.10", detect: "/usr/bin/true"},
		{src: filepath.Join(td, "detector/container/cnb/buildpacks/fail_detect_buildpack/some_version"), dest: "/cnb/buildpacks/fail_detect_buildpack/some_version", id: "fail_detect_buildpack", version: "some_version", api: "0.10"},
		{src: filepath.Join(td, "detector/container/cnb/buildpacks/bad_api/bad_api_version"), dest: "/cnb/buildpacks/bad_api/bad_api_version", id: "bad_api", version: "bad_api_version", api: "0.1"},
	}
	order := "[[order]]\n  [[order.group]]\n  id = \"samples/hello-world\"\n  version = \"0.0.1\"\n" +
		"  [[order.group]]\n  id = \"hello_world\"\n  version = \"0.0.1\"\n" +
		"  [[order.group]]\n  id = \"skiff/procfile\"\n  version = \"0.1.0\"\n  optional = true\n"
	ref := samplesBuilder(t, d, "samples", bps, order, "")

	app := d.newApp(t, admin, "cnb-samples", filepath.Join(pushedApps, "cnb-samples")).create(t)
	app.ssh(t, "builder:set", app.name, ref)
	out := app.deploy(t)
	wantOutput(t, out, "samples/hello-world 0.0.1", "hello_world ", "---> Hello World buildpack", "layers_dir: /layers/samples_hello-world", "plan contents:")

	// The web process (the Procfile's) sees the samples' launch layer env.
	if code, body := app.get(t, "/env.txt"); code != 200 || !strings.Contains(body, "SOME_VAR=some-val") {
		t.Errorf("GET /env.txt: %d %q", code, body)
	}
	// hello_world's process type is the image's, and runs.
	info := app.ssh(t, "releases:info", app.name, "--format", "json").stdout
	var rel struct {
		Image        string            `json:"image"`
		ProcessTypes map[string]string `json:"process_types"`
	}
	if err := json.Unmarshal([]byte(info), &rel); err != nil {
		t.Fatalf("releases:info: %v\n%s", err, info)
	}
	if h := rel.ProcessTypes["hello"]; !strings.Contains(h, "echo world") || !strings.Contains(h, "arg1") || rel.ProcessTypes["web"] == "" {
		t.Errorf("process types %v", rel.ProcessTypes)
	}
	if r := app.ssh(t, "run", app.name, "echo", "$SOME_VAR"); strings.TrimSpace(r.stdout) != "some-val" {
		t.Errorf("run echo $SOME_VAR: %s", r)
	}

	// The image: their launch layers, and the SBOM files they wrote.
	store, err := imagestore.Open(filepath.Join(d.data, "images"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := store.Image(rel.Image)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	var lm struct {
		Buildpacks []struct {
			Key    string                    `json:"key"`
			Layers map[string]map[string]any `json:"layers"`
		} `json:"buildpacks"`
		BOM *struct {
			SHA string `json:"sha"`
		} `json:"sbom"`
	}
	if err := json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.lifecycle.metadata"]), &lm); err != nil {
		t.Fatal(err)
	}
	var samples map[string]map[string]any
	for _, bp := range lm.Buildpacks {
		if bp.Key == "samples/hello-world" {
			samples = bp.Layers
		}
	}
	for _, l := range []string{"some-layer", "some-launch-cache-layer"} {
		if samples[l] == nil {
			t.Errorf("the image lacks the launch layer %s of samples/hello-world: %v", l, samples)
		}
	}
	if samples["some-build-layer"] != nil || samples["some-cache-layer"] != nil {
		t.Errorf("the image has layers that are not launch layers: %v", samples)
	}
	if lm.BOM == nil {
		t.Fatal("the image has no SBOM layer")
	}
	sbom := layerFiles(t, img, lm.BOM.SHA)
	for _, f := range []string{"layers/sbom/launch/samples_hello-world/sbom.cdx.json", "layers/sbom/launch/samples_hello-world/some-layer/sbom.cdx.json"} {
		if !strings.Contains(sbom[f], "bom-content") {
			t.Errorf("SBOM file %s: %q (have %v)", f, sbom[f], keys(sbom))
		}
	}

	t.Run("failing detect", func(t *testing.T) {
		app.ssh(t, "buildpacks:set", app.name, "fail_detect_buildpack")
		app.edit(t, "README", "fail detect\n")
		app.reject(t, "Opted out of detection", "Build failed: the buildpacks pinned with buildpacks:set (fail_detect_buildpack) do not detect this app")
	})
	t.Run("unsupported buildpack API", func(t *testing.T) {
		app.ssh(t, "buildpacks:set", app.name, "bad_api")
		app.edit(t, "README", "bad api\n")
		app.reject(t, "Build failed: buildpack bad_api asks for buildpack API 0.1, which the lifecycle does not support")
	})
	t.Run("image extension", func(t *testing.T) {
		ext := []cnbBuildpack{{src: filepath.Join(td, "creator/container/cnb/extensions/samples_hello-world/0.0.1"), dest: "/cnb/extensions/samples_hello-world/0.0.1"}}
		ref := samplesBuilder(t, d, "extensions", append(bps, ext...), order,
			"[[order-extensions]]\n  [[order-extensions.group]]\n  id = \"samples/hello-world\"\n  version = \"0.0.1\"\n")
		app.ssh(t, "buildpacks:clear", app.name)
		app.ssh(t, "builder:set", app.name, ref)
		app.edit(t, "README", "extension\n")
		app.reject(t, "Build failed: this builder chose an image extension, and skiff does not run image extensions")
	})
}

// layerFiles returns the regular files of an image's layer by its digest.
func layerFiles(t *testing.T, img v1.Image, digest string) map[string]string {
	t.Helper()
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	l, err := img.LayerByDiffID(h)
	if err != nil {
		if l, err = img.LayerByDigest(h); err != nil {
			t.Fatalf("layer %s: %v", digest, err)
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[strings.TrimPrefix(hdr.Name, "/")] = string(b)
		}
	}
	return files
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
