package buildpacks

// A stand-in for the CNB lifecycle, just enough of it to run the real
// buildpack binaries the way the detector, builder, restorer and exporter
// would: the environment of buildpack API 0.10, the order and group rules,
// layer restoration by type, launch layers reused from the previous image,
// and the launch environment. The real lifecycle runs these same binaries
// in the build package's tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// tree is the packaged buildpack tree, built once by TestMain.
var tree string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-buildpacks-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "skiff-buildpack")
		if err := BuildBinary(context.Background(), bin, runtime.GOARCH); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		tree = filepath.Join(dir, "tree")
		if err := WriteTree(tree, bin, runtime.GOARCH); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// platform is one app's build environment across builds.
type platform struct {
	t        *testing.T
	root     string
	app      string // the workspace
	layers   string
	platform string
	image    string // launch layers of the last exported "image"
	home     string
	env      map[string]string // user-provided build env (<platform>/env)

	out       bytes.Buffer
	group     []GroupEntry
	processes map[string]process
	order     []string // process types in definition order
	exported  []string // "<bp>/<layer>" exported from the layers dir by the last build
	reused    []string // launch layers taken from the previous image
}

type process struct {
	Type       string   `toml:"type"`
	Command    []string `toml:"command"`
	Args       []string `toml:"args"`
	Default    bool     `toml:"default"`
	WorkingDir string   `toml:"working-dir"`
	Buildpack  string
}

func newPlatform(t *testing.T, app string) *platform {
	t.Helper()
	root := t.TempDir()
	p := &platform{
		t: t, root: root,
		app:      filepath.Join(root, "workspace"),
		layers:   filepath.Join(root, "layers"),
		platform: filepath.Join(root, "platform"),
		image:    filepath.Join(root, "image"),
		home:     filepath.Join(root, "home"),
		env:      map[string]string{},
	}
	for _, d := range []string{p.layers, filepath.Join(p.platform, "env"), p.image, p.home} {
		must(t, os.MkdirAll(d, 0o755))
	}
	p.setApp(app)
	return p
}

// setApp replaces the workspace with a copy of testdata/apps/<app>, as a
// new push would.
// An app with a slash is a path under testdata/ (pushed/<app>: the apps
// the end-to-end tests push).
func (p *platform) setApp(app string) {
	p.t.Helper()
	must(p.t, os.RemoveAll(p.app))
	dir := filepath.Join("testdata", "apps", app)
	if strings.Contains(app, "/") {
		dir = filepath.Join("testdata", app)
	}
	must(p.t, os.CopyFS(p.app, os.DirFS(dir)))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// baseEnv is the environment the lifecycle starts from: the machine's PATH
// (it has python3, as the builder image does), a home, the user's env.
func (p *platform) baseEnv() []string {
	// Not through pyenv's shims: they would choose a Python by the app's
	// .python-version themselves, which is the buildpack's job.
	var path []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if !strings.Contains(d, "/.pyenv/") {
			path = append(path, d)
		}
	}
	env := []string{"PATH=" + strings.Join(path, ":"), "HOME=" + p.home, "LANG=C.UTF-8"}
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	keys := make([]string, 0, len(p.env))
	for k := range p.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		must(p.t, os.WriteFile(filepath.Join(p.platform, "env", k), []byte(p.env[k]), 0o644))
		env = setEnv(env, k, p.env[k])
	}
	return env
}

func bpDir(id string) string { return filepath.Join(tree, EscapeID(id), Version) }

func (p *platform) run(id, phase string, env []string) (int, error) {
	cmd := exec.Command(filepath.Join(bpDir(id), "bin", phase))
	cmd.Dir = p.app
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// detect runs the order like the detector and returns the chosen group, or
// nil when no group passes.
func (p *platform) detect() []GroupEntry {
	p.t.Helper()
	for i, g := range Order() {
		var passed []GroupEntry
		ok := true
		for j, e := range g.Group {
			plan := filepath.Join(p.root, fmt.Sprintf("plan-%d-%d.toml", i, j))
			env := append(p.baseEnv(), "CNB_BUILDPACK_DIR="+bpDir(e.ID), "CNB_PLATFORM_DIR="+p.platform, "CNB_BUILD_PLAN_PATH="+plan)
			code, err := p.run(e.ID, "detect", env)
			must(p.t, err)
			switch {
			case code == 0:
				passed = append(passed, e)
			case code == 100 && e.Optional:
			case code == 100:
				ok = false
			default:
				p.t.Fatalf("detect of %s exited %d:\n%s", e.ID, code, p.out.String())
			}
			if !ok {
				break
			}
		}
		if ok && len(passed) > 0 {
			return passed
		}
	}
	return nil
}

// build runs detection and the build of the chosen group, then exports. It
// reports whether the build succeeded; the output is in p.out.
func (p *platform) build() bool {
	p.t.Helper()
	p.out.Reset()
	p.group = p.detect()
	if p.group == nil {
		fmt.Fprintln(&p.out, "ERROR: No buildpack groups passed detection.")
		return false
	}
	p.processes, p.order = map[string]process{}, nil
	env := p.baseEnv()
	for _, e := range p.group {
		layers := filepath.Join(p.layers, EscapeID(e.ID))
		must(p.t, os.MkdirAll(layers, 0o755))
		plan := filepath.Join(p.root, "bp-plan-"+EscapeID(e.ID)+".toml")
		must(p.t, os.WriteFile(plan, nil, 0o644))
		bpEnv := append(slices.Clone(env), "CNB_BUILDPACK_DIR="+bpDir(e.ID), "CNB_PLATFORM_DIR="+p.platform,
			"CNB_LAYERS_DIR="+layers, "CNB_BP_PLAN_PATH="+plan, "CNB_TARGET_OS=linux", "CNB_TARGET_ARCH="+runtime.GOARCH)
		code, err := p.run(e.ID, "build", bpEnv)
		must(p.t, err)
		if code != 0 {
			fmt.Fprintf(&p.out, "ERROR: failed to build: exit status %d\n", code)
			return false
		}
		p.readLaunch(e.ID, layers)
		env = applyLayers(p.t, env, layers, func(t layerTypes) bool { return t.Build }, "env.build")
	}
	p.export()
	return true
}

func (p *platform) readLaunch(id, layers string) {
	var launch struct {
		Processes []process `toml:"processes"`
	}
	if _, err := toml.DecodeFile(filepath.Join(layers, "launch.toml"), &launch); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			p.t.Fatalf("%s wrote a bad launch.toml: %v", id, err)
		}
		return
	}
	for _, proc := range launch.Processes {
		proc.Buildpack = id
		if _, ok := p.processes[proc.Type]; !ok {
			p.order = append(p.order, proc.Type)
		}
		p.processes[proc.Type] = proc
	}
}

type layerTypes struct {
	Launch bool `toml:"launch"`
	Build  bool `toml:"build"`
	Cache  bool `toml:"cache"`
}

type layerTOML struct {
	Types    layerTypes     `toml:"types"`
	Metadata map[string]any `toml:"metadata"`
}

// layersOf returns the layer names of a buildpack's layers directory, in
// the lifecycle's (alphabetical) order, with their TOML.
func layersOf(t *testing.T, dir string) ([]string, map[string]layerTOML) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	must(t, err)
	var names []string
	docs := map[string]layerTOML{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".toml")
		if !ok || e.IsDir() || name == "launch" || name == "build" || name == "store" {
			continue
		}
		var doc layerTOML
		if _, err := toml.DecodeFile(filepath.Join(dir, e.Name()), &doc); err != nil {
			t.Fatalf("layer %s: %v", e.Name(), err)
		}
		names = append(names, name)
		docs[name] = doc
	}
	sort.Strings(names)
	return names, docs
}

// applyLayers adds the layers that pass the filter to env: bin/ on PATH,
// lib/ on LD_LIBRARY_PATH, then env/ and env.<scope>/ files.
func applyLayers(t *testing.T, env []string, layersDir string, use func(layerTypes) bool, scope string) []string {
	names, docs := layersOf(t, layersDir)
	for _, name := range names {
		if !use(docs[name].Types) {
			continue
		}
		dir := filepath.Join(layersDir, name)
		for sub, v := range map[string]string{"bin": "PATH", "lib": "LD_LIBRARY_PATH"} {
			if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
				env = setEnv(env, v, joinPath(filepath.Join(dir, sub), getEnv(env, v)))
			}
		}
		for _, d := range []string{"env", scope} {
			env = applyEnvDir(t, env, filepath.Join(dir, d))
		}
	}
	return env
}

func applyEnvDir(t *testing.T, env []string, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return env
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name, op, _ := strings.Cut(e.Name(), ".")
		if op == "delim" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		must(t, err)
		val := string(data)
		delim := ":"
		if d, err := os.ReadFile(filepath.Join(dir, name+".delim")); err == nil {
			delim = string(d)
		}
		old, had := lookupEnv(env, name)
		switch op {
		case "", "override":
			env = setEnv(env, name, val)
		case "default":
			if !had || old == "" {
				env = setEnv(env, name, val)
			}
		case "prepend":
			if had && old != "" {
				val += delim + old
			}
			env = setEnv(env, name, val)
		case "append":
			if had && old != "" {
				val = old + delim + val
			}
			env = setEnv(env, name, val)
		default:
			t.Fatalf("unknown env file suffix in %s", e.Name())
		}
	}
	return env
}

func joinPath(a, b string) string {
	if b == "" {
		return a
	}
	return a + ":" + b
}

func lookupEnv(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func getEnv(env []string, name string) string { v, _ := lookupEnv(env, name); return v }

func setEnv(env []string, name, val string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	return append(out, name+"="+val)
}

// export keeps the launch layers as the new image: a launch layer the
// buildpack left without a directory is taken from the previous image, and
// that must exist, as the exporter requires.
func (p *platform) export() {
	p.t.Helper()
	p.exported, p.reused = nil, nil
	newImage := p.image + ".new"
	must(p.t, os.RemoveAll(newImage))
	must(p.t, os.MkdirAll(newImage, 0o755))
	for _, e := range p.group {
		id := EscapeID(e.ID)
		names, docs := layersOf(p.t, filepath.Join(p.layers, id))
		for _, name := range names {
			if !docs[name].Types.Launch {
				continue
			}
			src := filepath.Join(p.layers, id, name)
			if _, err := os.Stat(src); err == nil {
				p.exported = append(p.exported, id+"/"+name)
			} else {
				src = filepath.Join(p.image, id, name)
				if _, err := os.Stat(src); err != nil {
					p.t.Fatalf("export: launch layer %s/%s has no directory and the previous image has none", id, name)
				}
				p.reused = append(p.reused, id+"/"+name)
			}
			must(p.t, linkTree(src, filepath.Join(newImage, id, name)))
		}
	}
	must(p.t, os.RemoveAll(p.image))
	must(p.t, os.Rename(newImage, p.image))
	// Make the reused layers visible where the launcher expects them.
	for _, r := range p.reused {
		must(p.t, linkTree(filepath.Join(p.image, r), filepath.Join(p.layers, r)))
	}
}

// linkTree copies a directory tree with hard links.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			return os.Link(path, target)
		}
	})
}

// restore prepares the layers directory for the next build as the analyzer
// and restorer do: cached layers keep contents and metadata, launch-only
// layers keep metadata only, others vanish; no [types] survive.
func (p *platform) restore() {
	p.t.Helper()
	bps, err := os.ReadDir(p.layers)
	must(p.t, err)
	for _, bp := range bps {
		dir := filepath.Join(p.layers, bp.Name())
		names, docs := layersOf(p.t, dir)
		for _, name := range names {
			doc := docs[name]
			keepMeta := doc.Types.Cache || doc.Types.Launch
			if !doc.Types.Cache {
				must(p.t, os.RemoveAll(filepath.Join(dir, name)))
			}
			if !keepMeta {
				must(p.t, os.Remove(filepath.Join(dir, name+".toml")))
				continue
			}
			// The lifecycle keeps layer metadata in a JSON image label (or
			// the cache's JSON) and writes it back as TOML: numbers come back
			// as floats and times as strings.
			var buf bytes.Buffer
			if doc.Metadata != nil {
				js, err := json.Marshal(doc.Metadata)
				must(p.t, err)
				var back map[string]any
				must(p.t, json.Unmarshal(js, &back))
				must(p.t, toml.NewEncoder(&buf).Encode(map[string]any{"metadata": back}))
			}
			must(p.t, os.WriteFile(filepath.Join(dir, name+".toml"), buf.Bytes(), 0o644))
		}
		for _, f := range []string{"launch.toml", "build.toml"} {
			os.Remove(filepath.Join(dir, f))
		}
		// Layer directories without TOML are not restored either.
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				must(p.t, os.RemoveAll(filepath.Join(dir, e.Name())))
			} else if e.IsDir() && !docs[e.Name()].Types.Cache {
				must(p.t, os.RemoveAll(filepath.Join(dir, e.Name())))
			}
		}
	}
}

// rebuild is the next push: restore, then build.
func (p *platform) rebuild() bool {
	p.t.Helper()
	p.restore()
	return p.build()
}

// mustBuild builds and fails the test with the output when the build fails.
func (p *platform) mustBuild(rebuild bool) {
	p.t.Helper()
	start := time.Now()
	ok := false
	if rebuild {
		ok = p.rebuild()
	} else {
		ok = p.build()
	}
	p.t.Logf("build (rebuild=%v) took %s:\n%s", rebuild, time.Since(start).Round(time.Millisecond), p.out.String())
	if !ok {
		p.t.Fatalf("build failed:\n%s", p.out.String())
	}
}

// groupIDs returns the IDs of the group that ran.
func (p *platform) groupIDs() []string {
	var ids []string
	for _, e := range p.group {
		ids = append(ids, e.ID)
	}
	return ids
}

// layer reads a layer's TOML after a build.
func (p *platform) layer(id, name string) (layerTOML, bool) {
	_, docs := layersOf(p.t, filepath.Join(p.layers, EscapeID(id)))
	doc, ok := docs[name]
	return doc, ok
}

// launchEnv is the environment the launcher gives a process: the launch
// layers of each buildpack, in group order.
func (p *platform) launchEnv(port int) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + p.home, fmt.Sprintf("PORT=%d", port)}
	for _, e := range p.group {
		env = applyLayers(p.t, env, filepath.Join(p.layers, EscapeID(e.ID)), func(t layerTypes) bool { return t.Launch }, "env.launch")
	}
	return env
}

// start launches a process type as the launcher would (directly, no shell)
// on a free port and waits until it answers HTTP.
func (p *platform) start(procType string) string {
	p.t.Helper()
	proc, ok := p.processes[procType]
	if !ok {
		p.t.Fatalf("no %s process; have %v", procType, p.order)
	}
	port := freePort(p.t)
	env := p.launchEnv(port)
	bin := proc.Command[0]
	if !filepath.IsAbs(bin) {
		for _, dir := range filepath.SplitList(getEnv(env, "PATH")) {
			if fi, err := os.Stat(filepath.Join(dir, bin)); err == nil && !fi.IsDir() {
				bin = filepath.Join(dir, bin)
				break
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append(slices.Clone(proc.Command[1:]), proc.Args...)...)
	cmd.Dir = p.app
	if proc.WorkingDir != "" {
		cmd.Dir = proc.WorkingDir
	}
	cmd.Env = env
	// The process may start children (npm start runs node): stop the whole
	// process group, as the runtime stops a whole container.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(p.t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.t.Cleanup(func() {
		cancel()
		<-done
		if p.t.Failed() {
			p.t.Logf("%s process output:\n%s", procType, out.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			p.t.Fatalf("%s process exited early:\n%s", procType, out.String())
		default:
		}
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s process does not answer on %s: %v\n%s", procType, url, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
