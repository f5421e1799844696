package nodejs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

// DefaultNodeRange is used without engines.node: the line that is an LTS
// line today and stays supported longest among those most apps test on.
// Bump it when a newer LTS line has settled.
const DefaultNodeRange = "24.x"

// resolveTTL is how long a resolved range is trusted before the registry is
// asked again: rebuilds within a day need no metadata download, and a new
// patch release is picked up by the next day's build.
const resolveTTL = 24 * time.Hour

// Layer metadata holds strings only: the lifecycle keeps it as JSON in
// the image and the cache, so numbers would come back as floats and times
// as strings, and no longer decode into the types they were written from.
// 2: the toolchain is a build layer with a launch twin; node_modules a
// real directory at build time.
const layoutVersion = "2"

// MinNodeMajor is the oldest Node.js line skiff installs: the registry's
// node-linux-* packages of older lines are laid out differently (some hold
// another tarball instead of bin/node), and no npm that still supports
// them talks to today's registry reliably.
const MinNodeMajor = 14

// nodeMeta is the node layer's metadata.
type nodeMeta struct {
	Layout   string `toml:"layout"`
	Range    string `toml:"range"`     // engines.node as requested (or the default)
	NPMRange string `toml:"npm_range"` // engines.npm as requested
	Arch     string `toml:"arch"`
	Node     string `toml:"node"`
	NPM      string `toml:"npm"`
	Resolved string `toml:"resolved"` // RFC 3339
}

// runtimeInfo is what was installed.
type runtimeInfo struct {
	Node, NPM string
	Dir       string // the layer: bin/node, bin/npm, include/node (headers for node-gyp)
	meta      nodeMeta
}

// launchNode gives the image the Node.js the build used: the node launch
// layer, a hard-linked twin of the toolchain. While the versions stay the
// same, the previous image's layer is reused as it is, never restored or
// exported again.
func launchNode(bc *cnb.BuildContext, rt *runtimeInfo) error {
	m := struct {
		Layout string `toml:"layout"`
		Arch   string `toml:"arch"`
		Node   string `toml:"node"`
		NPM    string `toml:"npm"`
	}{rt.meta.Layout, rt.meta.Arch, rt.meta.Node, rt.meta.NPM}
	return launchTwin(bc, rt.Dir, "node", m, func(l *cnb.Layer) error {
		// Production is what Node.js users expect when their app runs
		// (Heroku sets it too); a config var overrides it.
		return l.SetEnv(cnb.EnvLaunch, "NODE_ENV", cnb.EnvDefault, "production")
	})
}

// launchTwin makes the launch layer name a copy of the directory src (a
// build layer of this buildpack, so the copy is hard links) keyed on meta:
// when the previous image's layer has the same metadata, the layer is only
// declared, and the exporter takes it from that image. setup adds what the
// copy needs besides src (env files).
func launchTwin(bc *cnb.BuildContext, src, name string, meta any, setup func(*cnb.Layer) error) error {
	l, err := bc.Layer(name)
	if err != nil {
		return err
	}
	if l.SameMetadata(meta) {
		return l.Commit(cnb.LayerTypes{Launch: true}, meta)
	}
	if err := l.Reset(); err != nil {
		return err
	}
	if err := linkTree(src, l.Path); err != nil {
		return fmt.Errorf("layer %s: %w", name, err)
	}
	if setup != nil {
		if err := setup(l); err != nil {
			return err
		}
	}
	return l.Commit(cnb.LayerTypes{Launch: true}, meta)
}

// installNode makes the toolchain layer (a build and cache layer) hold a
// Node.js matching nodeRange and an npm matching npmRange (or the newest
// npm that supports that Node). launchNode makes the image's copy of it.
func installNode(bc *cnb.BuildContext, reg *registry, nodeRange, npmRange, source string) (*runtimeInfo, error) {
	ctx := bc.Context
	rng, err := semver.ParseRange(nodeRange)
	if err != nil {
		return nil, err
	}
	arch, err := nodeArch(bc.Env)
	if err != nil {
		return nil, err
	}
	layer, err := bc.Layer("toolchain")
	if err != nil {
		return nil, err
	}
	var old nodeMeta
	hasOld, _ := layer.Metadata(&old)
	intact := hasOld && old.Layout == layoutVersion && old.Arch == arch && layer.HasContents() &&
		cnb.Exists(filepath.Join(layer.Path, "bin", "node")) && cnb.Exists(filepath.Join(layer.Path, "bin", "npm"))
	sameRequest := intact && old.Range == nodeRange && old.NPMRange == npmRange
	info := &runtimeInfo{Dir: layer.Path}
	commit := func(m nodeMeta) error {
		info.meta = m
		return layer.Commit(cnb.LayerTypes{Build: true, Cache: true}, m)
	}

	bc.Log.Step("Installing Node.js")
	if sameRequest && cnb.Fresh(old.Resolved, resolveTTL) {
		bc.Log.Detail("Using cached Node.js %s and npm %s (%s: %s)", old.Node, old.NPM, source, nodeRange)
		info.Node, info.NPM = old.Node, old.NPM
		return info, commit(old)
	}
	bc.Log.Detail("Resolving %s (%s)", nodeRange, source)
	nodePkg, err := reg.packument(ctx, "node-linux-"+arch)
	if err != nil {
		if v, perr := semver.Parse(old.Node); intact && perr == nil && rng.Contains(v) {
			bc.Log.Warn("cannot reach the npm registry (%v); using the cached Node.js %s", err, old.Node)
			info.Node, info.NPM = old.Node, old.NPM
			return info, commit(old)
		}
		return nil, fmt.Errorf("list Node.js versions: %w", err)
	}
	nodeV, nodeDoc, ok := nodePkg.resolve(rng, MinNodeMajor)
	if !ok {
		return nil, cnb.Failf("No Node.js that skiff installs matches %s %q: it installs Node.js %d and newer, and the npm registry has %s.", source, nodeRange, MinNodeMajor, nodePkg.lines(MinNodeMajor)).
			Hint(`Ask for one of those in package.json, like "engines": {"node": "%s.x"}.`, DefaultNodeRange[:strings.Index(DefaultNodeRange, ".")])
	}
	npmDoc, err := resolveNPM(ctx, reg, nodeV, npmRange)
	if err != nil {
		return nil, err
	}
	m := nodeMeta{Layout: layoutVersion, Range: nodeRange, NPMRange: npmRange, Arch: arch,
		Node: nodeV.String(), NPM: npmDoc.Version, Resolved: cnb.Timestamp()}
	info.Node, info.NPM = m.Node, m.NPM
	if intact && old.Node == m.Node && old.NPM == m.NPM {
		bc.Log.Detail("Using cached Node.js %s and npm %s", m.Node, m.NPM)
		return info, commit(m)
	}
	start := time.Now()
	if err := layer.Reset(); err != nil {
		return nil, err
	}
	bc.Log.Detail("Downloading Node.js %s", m.Node)
	if err := unpack(ctx, reg.client, nodeDoc.Dist, layer.Path, layer.Path); err != nil {
		return nil, fmt.Errorf("install Node.js %s: %w", m.Node, err)
	}
	if fi, err := os.Stat(filepath.Join(layer.Path, "bin", "node")); err != nil || !fi.Mode().IsRegular() {
		return nil, cnb.Failf("The npm registry's node-linux-%s %s has no bin/node, so it cannot be installed.", arch, m.Node).
			Hint("Ask for another Node.js release in engines.node.")
	}
	if err := os.Chmod(filepath.Join(layer.Path, "bin", "node"), 0o755); err != nil {
		return nil, fmt.Errorf("install Node.js %s: %w", m.Node, err)
	}
	bc.Log.Detail("Downloading npm %s", m.NPM)
	npmDir := filepath.Join(layer.Path, "lib", "node_modules", "npm")
	if err := unpack(ctx, reg.client, npmDoc.Dist, npmDir, layer.Path); err != nil {
		return nil, fmt.Errorf("install npm %s: %w", m.NPM, err)
	}
	// npm's tarball keeps no exec bits; npm sets them on install, as here.
	for name, target := range map[string]string{"npm": "npm-cli.js", "npx": "npx-cli.js"} {
		cli := filepath.Join(npmDir, "bin", target)
		if err := os.Chmod(cli, 0o755); err != nil {
			return nil, fmt.Errorf("install npm %s: %w", m.NPM, err)
		}
		link := filepath.Join(layer.Path, "bin", name)
		os.Remove(link)
		if err := os.Symlink(filepath.Join("..", "lib", "node_modules", "npm", "bin", target), link); err != nil {
			return nil, err
		}
	}
	bc.Log.Done(start)
	return info, commit(m)
}

// unpack downloads a tarball (checking its integrity) into a temporary
// file under tmpDir and extracts its "package/" into dst.
func unpack(ctx context.Context, c *fetch.Client, d dist, dst, tmpDir string) error {
	if d.Tarball == "" {
		return errors.New("the registry gives no tarball")
	}
	path, err := c.File(ctx, d.Tarball, tmpDir, maxTarball, d.Integrity)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fetch.ExtractTarGz(f, dst, 1)
}

// resolveNPM picks npm: the newest matching engines.npm, or else the
// latest npm if it supports this Node.js, or else the newest npm that does.
func resolveNPM(ctx context.Context, reg *registry, node semver.Version, npmRange string) (*versionDoc, error) {
	if npmRange == "" {
		latest, err := reg.version(ctx, "npm", "latest")
		if err != nil {
			return nil, fmt.Errorf("find the latest npm: %w", err)
		}
		if latest.enginesNode().Contains(node) {
			return latest, nil
		}
	}
	p, err := reg.packument(ctx, "npm")
	if err != nil {
		return nil, fmt.Errorf("list npm versions: %w", err)
	}
	want := "*"
	if npmRange != "" {
		want = npmRange
	}
	rng, err := semver.ParseRange(want)
	if err != nil {
		return nil, err
	}
	var best *versionDoc
	var bestV semver.Version
	for s, doc := range p.Versions {
		v, err := semver.Parse(s)
		if err != nil || len(v.Pre) > 0 || !rng.Contains(v) || !doc.enginesNode().Contains(node) {
			continue
		}
		if best == nil || v.Compare(bestV) > 0 {
			d := doc
			best, bestV = &d, v
		}
	}
	if best == nil {
		if npmRange != "" {
			return nil, cnb.Failf("no npm release matches engines.npm %q and supports Node.js %s", npmRange, node).
				Hint("Widen engines.npm, or remove it to use the newest npm for this Node.js.")
		}
		return nil, cnb.Failf("no npm release supports Node.js %s", node).Hint("Use a newer Node.js in engines.node.")
	}
	return best, nil
}

// nodeArch maps the target architecture to the suffix of the registry's
// node-linux-* packages.
func nodeArch(env cnb.Env) (string, error) {
	arch := env.Get("CNB_TARGET_ARCH")
	if arch == "" {
		arch = runtime.GOARCH
	}
	switch arch {
	case "amd64":
		return "x64", nil
	case "arm64":
		return "arm64", nil
	case "ppc64le", "s390x":
		return arch, nil
	}
	return "", cnb.Failf("Node.js is not published for the %s architecture", arch)
}
