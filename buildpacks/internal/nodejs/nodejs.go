// Package nodejs is the Node.js buildpack: for an app with a package.json
// it installs the Node.js that engines.node asks for (from the npm
// registry's node-linux-* packages, default DefaultNodeRange) with an npm,
// installs the dependencies (npm ci with a lockfile, else npm install) into
// a cached launch layer that node_modules links to, runs the build script,
// and makes "npm start" (or "node server.js") the web process.
package nodejs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
)

// Buildpack is the Node.js buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/nodejs",
	Name:        "Node.js",
	Description: "Node.js apps with npm: engines.node, npm ci, scripts.build, npm start",
	Detect:      detect,
	Build:       build,
}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	fi, err := os.Stat(dc.AppFile("package.json"))
	if err != nil || !fi.Mode().IsRegular() {
		return nil, nil
	}
	return &cnb.BuildPlan{
		Provides: []cnb.Provide{{Name: "node"}},
		Requires: []cnb.Require{{Name: "node"}},
	}, nil
}

func build(bc *cnb.BuildContext) error {
	bc.Log.Step("Node.js app detected")
	data, err := os.ReadFile(bc.AppFile("package.json"))
	if err != nil {
		return err
	}
	pj, err := ParsePackageJSON(data)
	if err != nil {
		return cnb.Failf("%v", err).Hint("Fix package.json, commit it and push again.")
	}
	// Fail before minutes of installing when there will be nothing to run.
	web, err := webProcess(bc, pj)
	if err != nil {
		return err
	}
	warnOtherManagers(bc, pj)

	nodeRange, source := pj.NodeRange, "engines.node"
	if nodeRange == "" {
		nodeRange, source = DefaultNodeRange, "the default"
		bc.Log.Detail("package.json has no engines.node; using %s", DefaultNodeRange)
	}
	base := bc.Env.Get("npm_config_registry")
	if base == "" {
		base = bc.Env.Get("NPM_CONFIG_REGISTRY")
	}
	if base == "" {
		base = DefaultRegistry
	}
	reg := &registry{base: base, client: fetch.New("skiff-buildpacks")}
	rt, err := installNode(bc, reg, nodeRange, pj.NPMRange, source)
	if err != nil {
		return err
	}
	bc.Log.Detail("Node.js %s, npm %s", rt.Node, rt.NPM)

	npmCache, err := bc.CacheLayer("npm-cache")
	if err != nil {
		return err
	}
	env := bc.Env.PrependPath(filepath.Join(rt.Dir, "bin")).With(
		"npm_config_cache="+npmCache,
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
		"npm_config_progress=false",
	)
	if ca := systemCABundle(bc.Env); ca != "" {
		env = env.With("NODE_EXTRA_CA_CERTS=" + ca)
	}
	modules, err := installDependencies(bc, env, rt)
	if err != nil {
		return err
	}
	if err := runBuildScript(bc, env, pj); err != nil {
		return err
	}
	// Committed after the build script, which may have written to it
	// (node_modules/.cache).
	if err := modules(); err != nil {
		return err
	}
	if web != nil {
		bc.AddProcess(*web)
	}
	return nil
}

// webProcess chooses the web process: "npm start" for a start script, node
// directly for a server.js (no npm between the launcher's signals and the
// app), none when a Procfile will provide it.
func webProcess(bc *cnb.BuildContext, pj *PackageJSON) (*cnb.Process, error) {
	if _, ok := pj.Scripts["start"]; ok {
		return &cnb.Process{Type: "web", Command: []string{"npm", "start"}, Default: true}, nil
	}
	if fi, err := os.Stat(bc.AppFile("server.js")); err == nil && fi.Mode().IsRegular() {
		return &cnb.Process{Type: "web", Command: []string{"node", "server.js"}, Default: true}, nil
	}
	if cnb.Exists(bc.AppFile("Procfile")) {
		return nil, nil
	}
	return nil, cnb.Failf(`missing npm start: package.json has no "start" script and there is no server.js`).
		Hint(`Add a start script to package.json, like "scripts": {"start": "node index.js"},`).
		Hint("or a server.js, or a Procfile with a web process.")
}

func warnOtherManagers(bc *cnb.BuildContext, pj *PackageJSON) {
	if cnb.Exists(bc.AppFile("package-lock.json")) || cnb.Exists(bc.AppFile("npm-shrinkwrap.json")) {
		return
	}
	for _, f := range []string{"yarn.lock", "pnpm-lock.yaml", "bun.lockb"} {
		if cnb.Exists(bc.AppFile(f)) {
			bc.Log.Warn("%s found, but skiff installs with npm and ignores it; commit a package-lock.json (npm install) for repeatable installs", f)
			return
		}
	}
	if pj.PackageManager != "" && !strings.HasPrefix(pj.PackageManager, "npm@") {
		bc.Log.Warn("packageManager %q is ignored: skiff installs with npm", pj.PackageManager)
	}
}

type modulesMeta struct {
	Layout string `toml:"layout"`
	Key    string `toml:"key"`
}

// installDependencies fills the modules layer with node_modules and links
// the app's node_modules to it. The layer is reused untouched while
// package.json, the lockfile, Node.js, npm and the install mode stay the
// same: a push that only changes code installs nothing. It returns the
// function that commits the layer.
func installDependencies(bc *cnb.BuildContext, env cnb.Env, rt *runtimeInfo) (func() error, error) {
	lockfile := ""
	for _, f := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		if cnb.Exists(bc.AppFile(f)) {
			lockfile = f
			break
		}
	}
	omitDev := strings.EqualFold(env.Get("npm_config_production"), "true") || strings.EqualFold(env.Get("NPM_CONFIG_PRODUCTION"), "true")
	key, err := modulesKey(bc, lockfile, rt, omitDev)
	if err != nil {
		return nil, err
	}
	layer, err := bc.Layer("modules")
	if err != nil {
		return nil, err
	}
	target := filepath.Join(layer.Path, "node_modules")
	appModules := bc.AppFile("node_modules")
	meta := modulesMeta{Layout: layoutVersion, Key: key}
	commit := func() error {
		return layer.Commit(cnb.LayerTypes{Build: true, Launch: true, Cache: true}, meta)
	}

	bc.Log.Step("Installing dependencies")
	if fi, err := os.Lstat(appModules); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			bc.Log.Warn("node_modules is checked into git; it is replaced by a fresh install (add node_modules to .gitignore)")
		}
		if err := os.RemoveAll(appModules); err != nil {
			return nil, err
		}
	}
	var old modulesMeta
	if ok, _ := layer.Metadata(&old); ok && old == meta && layer.HasContents() && cnb.Exists(target) {
		bc.Log.Detail("Reusing node_modules (%s unchanged)", nonEmpty(lockfile, "package.json"))
		return commit, os.Symlink(target, appModules)
	}
	if err := layer.Reset(); err != nil {
		return nil, err
	}
	args := []string{"install"}
	if lockfile != "" {
		args = []string{"ci"}
		bc.Log.Detail("Running npm ci (%s)", lockfile)
	} else {
		bc.Log.Detail("Running npm install (no package-lock.json: commit one for repeatable installs)")
	}
	if omitDev {
		args = append(args, "--omit=dev")
	} else {
		args = append(args, "--include=dev")
	}
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: "npm", Args: args, Dir: bc.AppDir, Env: env}); err != nil {
		return nil, cnb.Failf("npm %s failed (exit status %d); the npm output above says why", args[0], cnb.ExitCode(err)).
			Hint("Check that package.json and %s agree (run npm install locally and commit both).", nonEmpty(lockfile, "package-lock.json"))
	}
	// npm installs into the app; move the result into the layer, where the
	// next build can reuse it and the exporter can share it between images.
	if cnb.Exists(appModules) {
		if err := move(appModules, target); err != nil {
			return nil, fmt.Errorf("move node_modules into its layer: %w", err)
		}
	} else if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(target, appModules); err != nil {
		return nil, err
	}
	bc.Log.Done(start)
	return commit, nil
}

func modulesKey(bc *cnb.BuildContext, lockfile string, rt *runtimeInfo, omitDev bool) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "layout=%s node=%s npm=%s omitdev=%v\n", layoutVersion, rt.Node, rt.NPM, omitDev)
	for _, f := range []string{"package.json", lockfile, ".npmrc"} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(bc.AppFile(f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func runBuildScript(bc *cnb.BuildContext, env cnb.Env, pj *PackageJSON) error {
	script := ""
	for _, s := range []string{"heroku-postbuild", "build"} {
		if _, ok := pj.Scripts[s]; ok {
			script = s
			break
		}
	}
	if script == "" {
		return nil
	}
	bc.Log.Step("Running build (npm run %s)", script)
	if _, ok := env.Lookup("NODE_ENV"); !ok {
		env = env.With("NODE_ENV=production")
	}
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: "npm", Args: []string{"run", script}, Dir: bc.AppDir, Env: env}); err != nil {
		return cnb.Failf("npm run %s failed (exit status %d); fix the errors above and push again", script, cnb.ExitCode(err))
	}
	bc.Log.Done(start)
	return nil
}

func nonEmpty(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// systemCABundle returns the base image's CA bundle for Node.js to trust
// besides its own built-in list: behind a TLS-inspecting proxy the proxy's
// CA is only in the system bundle, and npm would fail with
// SELF_SIGNED_CERT_IN_CHAIN. A NODE_EXTRA_CA_CERTS the user set wins.
func systemCABundle(env cnb.Env) string {
	if _, ok := env.Lookup("NODE_EXTRA_CA_CERTS"); ok {
		return ""
	}
	for _, f := range []string{env.Get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"} {
		if fi, err := os.Stat(f); f != "" && err == nil && fi.Mode().IsRegular() {
			return f
		}
	}
	return ""
}
