// Package nodejs is the Node.js buildpack: for an app with a package.json
// it installs the Node.js that engines.node asks for (from the npm
// registry's node-linux-* packages, default DefaultNodeRange), the package
// manager the app uses (npm; yarn or pnpm at the version packageManager or
// the lockfile pins, from the npm registry), installs the dependencies with
// devDependencies into the app's own node_modules, runs the build script,
// prunes the devDependencies, and makes "<manager> start" (or "node
// server.js") the web process; an app whose build leaves a static site and
// that has nothing to start is served by the static web server.
package nodejs

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
	"github.com/skiffhq/skiff/buildpacks/internal/semver"
	"github.com/skiffhq/skiff/buildpacks/internal/static"
)

// Buildpack is the Node.js buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/nodejs",
	Name:        "Node.js",
	Description: "Node.js apps with npm, yarn or pnpm: engines.node, the lockfile's manager, scripts.build, start",
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
	req, err := chooseManager(bc.AppDir, pj)
	if err != nil {
		return err
	}
	buildScript := buildScriptOf(pj)
	// Fail before minutes of installing when there will be nothing to run.
	web, err := webProcess(bc, pj, req.Name, buildScript)
	if err != nil {
		return err
	}
	if cnb.Exists(bc.AppFile("bun.lockb")) || cnb.Exists(bc.AppFile("bun.lock")) {
		bc.Log.Warn("bun's lockfile is ignored: skiff installs with npm, yarn or pnpm")
	}

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
	npmRange := ""
	if req.Name == "npm" {
		npmRange = req.Range
	}
	rt, err := installNode(bc, reg, nodeRange, npmRange, source)
	if err != nil {
		return err
	}
	bc.Log.Detail("Node.js %s, npm %s", rt.Node, rt.NPM)
	arch, _ := nodeArch(bc.Env)
	nodeV, _ := semver.Parse(rt.Node)
	pm, err := installManager(bc, reg, req, nodeV, arch)
	if err != nil {
		return err
	}

	env, err := buildEnv(bc, rt, pm, base)
	if err != nil {
		return err
	}
	omitDev, prune := settings(bc.Env)
	d := &deps{bc: bc, env: env, pm: pm, rt: rt, pj: pj, lock: req.Lockfile, omitDev: omitDev, prune: prune, pnp: pm.Berry && usesPnP(bc.AppDir)}
	if d.pnp {
		if err := yarnCache(bc, d); err != nil {
			return err
		}
	}
	if err := d.computeKey(); err != nil {
		return err
	}
	reusable, err := d.reusable()
	if err != nil {
		return err
	}
	bc.Log.Step("Installing dependencies (%s%s)", pm.Name, map[bool]string{true: " " + pm.Version, false: ""}[pm.Version != ""])
	if buildScript == "" && reusable {
		// Nothing at build time needs node_modules: the image keeps the
		// previous one.
		if err := d.forLaunch(true); err != nil {
			return err
		}
	} else {
		if err := d.forBuild(buildScript != ""); err != nil {
			return err
		}
		if err := runBuildScript(bc, env, pm.Name, buildScript); err != nil {
			return err
		}
		if web == nil && !cnb.Exists(bc.AppFile("Procfile")) {
			// A build that leaves a static site, with nothing to start.
			return serveStatic(bc, d)
		}
		if err := d.forLaunch(reusable); err != nil {
			return err
		}
	}
	if err := launchNode(bc, rt); err != nil {
		return err
	}
	if pm.Dir != "" && (d.pnp || (web != nil && web.Command[0] == pm.Name)) {
		if err := launchTwin(bc, pm.Dir, "pm", pm.meta, nil); err != nil {
			return err
		}
	}
	if web != nil {
		bc.AddProcess(*web)
		bc.Log.Detail("Process type web -> %s", strings.Join(web.Command, " "))
	}
	return nil
}

// buildEnv is the environment the package manager and the build script
// run in: the toolchain and manager on PATH, their caches in cache layers,
// no prompts, no telemetry.
func buildEnv(bc *cnb.BuildContext, rt *runtimeInfo, pm *manager, registryURL string) (cnb.Env, error) {
	dirs := []string{filepath.Join(rt.Dir, "bin")}
	if pm.Dir != "" {
		dirs = append([]string{filepath.Join(pm.Dir, "bin")}, dirs...)
	}
	npmCache, err := bc.CacheLayer("npm-cache")
	if err != nil {
		return nil, err
	}
	env := bc.Env.PrependPath(dirs...).With(
		"npm_config_cache="+npmCache,
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
		"npm_config_progress=false",
		"CI=true", // no prompts, no progress bars (pnpm and yarn)
	)
	switch {
	case pm.Name == "yarn" && pm.Berry:
		env = env.With("YARN_ENABLE_TELEMETRY=0", "YARN_ENABLE_GLOBAL_CACHE=false", "YARN_ENABLE_PROGRESS_BARS=false")
		if registryURL != DefaultRegistry {
			env = env.With("YARN_NPM_REGISTRY_SERVER=" + registryURL)
		}
	case pm.Name == "yarn":
		cache, err := bc.CacheLayer("yarn-cache")
		if err != nil {
			return nil, err
		}
		env = env.With("YARN_CACHE_FOLDER="+cache, "YARN_SILENT=0")
	case pm.Name == "pnpm":
		store, err := bc.CacheLayer("pnpm-store")
		if err != nil {
			return nil, err
		}
		env = env.With("npm_config_store_dir=" + store)
		if v, _ := settings(bc.Env); !v {
			env = env.With("npm_config_production=false")
		}
	}
	if pm.Name == "yarn" && pm.Berry {
		cache, err := bc.CacheLayer("yarn-cache")
		if err != nil {
			return nil, err
		}
		env = env.With("YARN_CACHE_FOLDER=" + cache)
	}
	if ca := systemCABundle(bc.Env); ca != "" {
		env = env.With("NODE_EXTRA_CA_CERTS=" + ca)
	}
	return env, nil
}

// usesPnP reports whether Yarn (2 or later) installs the app with
// Plug'n'Play, its default, rather than into node_modules.
func usesPnP(app string) bool {
	data, err := os.ReadFile(filepath.Join(app, ".yarnrc.yml"))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "nodeLinker:"); ok {
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			return v == "pnp" || v == ""
		}
	}
	return true
}

// yarnCache makes Yarn Plug'n'Play's cache a launch layer as well: its
// zip archives are the installed packages the app loads at run time.
func yarnCache(bc *cnb.BuildContext, d *deps) error {
	l, err := bc.Layer("yarn-cache")
	if err != nil {
		return err
	}
	if !l.HasContents() {
		if err := l.Reset(); err != nil {
			return err
		}
	}
	d.env = d.env.With("YARN_CACHE_FOLDER=" + l.Path)
	return l.Commit(cnb.LayerTypes{Build: true, Launch: true, Cache: true}, nil)
}

// serveStatic serves the static site the build left (dist/, build/ or
// out/ with an index.html) with the static web server: for a single-page
// app, by default every path without a file gets its index.html.
// node_modules is not needed at run time and is not kept in the image.
func serveStatic(bc *cnb.BuildContext, d *deps) error {
	dir := staticOutput(bc.AppDir)
	if dir == "" {
		return cnb.Failf(`missing npm start: package.json has no "start" script, there is no server.js, and the build left no static site (dist/, build/ or out/ with an index.html).`).
			Hint(`Add a start script to package.json, like "scripts": {"start": "node index.js"}, a server.js, or a Procfile with a web process.`)
	}
	if err := os.RemoveAll(bc.AppFile("node_modules")); err != nil {
		return err
	}
	for _, name := range []string{"modules", "node", "pm"} {
		l, err := bc.Layer(name)
		if err != nil {
			return err
		}
		if err := l.Remove(); err != nil {
			return err
		}
	}
	rel, _ := filepath.Rel(bc.AppDir, dir)
	fallback, err := static.Fallback(bc.Env, "index.html")
	if err != nil {
		return err
	}
	bc.Log.Step("Serving %s/ with the static web server", rel)
	bc.Log.Detail("No start script: %s/ (the build's output) is the site", rel)
	if fallback != "" {
		bc.Log.Detail("Paths without a file get %s/%s, for the app's client-side routes (SKIFF_STATIC_FALLBACK=off turns that off)", rel, fallback)
	}
	proc, err := static.Install(bc, dir, fallback)
	if err != nil {
		return err
	}
	bc.AddProcess(proc)
	bc.Log.Detail("Process type web -> skiff-static --root %s/", rel)
	return nil
}

// staticOutput returns the directory a front-end build leaves, or "".
func staticOutput(app string) string {
	for _, d := range []string{"dist", "build", "out"} {
		if fi, err := os.Stat(filepath.Join(app, d, "index.html")); err == nil && fi.Mode().IsRegular() {
			return filepath.Join(app, d)
		}
	}
	return ""
}

// webProcess chooses the web process: "<manager> start" for a start
// script, node directly for a server.js (no manager between the launcher's
// signals and the app), none when a Procfile will provide it or when the
// build may leave a static site to serve (decided after the build).
func webProcess(bc *cnb.BuildContext, pj *PackageJSON, pm, buildScript string) (*cnb.Process, error) {
	if _, ok := pj.Scripts["start"]; ok {
		return &cnb.Process{Type: "web", Command: []string{pm, "start"}, Default: true}, nil
	}
	if fi, err := os.Stat(bc.AppFile("server.js")); err == nil && fi.Mode().IsRegular() {
		return &cnb.Process{Type: "web", Command: []string{"node", "server.js"}, Default: true}, nil
	}
	if cnb.Exists(bc.AppFile("Procfile")) || buildScript != "" {
		return nil, nil
	}
	return nil, cnb.Failf(`missing npm start: package.json has no "start" script and there is no server.js.`).
		Hint(`Add a start script to package.json, like "scripts": {"start": "node index.js"}, a server.js, a Procfile with a web process,`).
		Hint("or a build script that leaves a static site in dist/, build/ or out/.")
}

// buildScriptOf returns the script that builds the app: heroku-postbuild,
// else build, else "".
func buildScriptOf(pj *PackageJSON) string {
	for _, s := range []string{"heroku-postbuild", "build"} {
		if _, ok := pj.Scripts[s]; ok {
			return s
		}
	}
	return ""
}

func runBuildScript(bc *cnb.BuildContext, env cnb.Env, pm, script string) error {
	if script == "" {
		return nil
	}
	bc.Log.Step("Running build (%s run %s)", pm, script)
	if _, ok := env.Lookup("NODE_ENV"); !ok {
		env = env.With("NODE_ENV=production")
	}
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: pm, Args: []string{"run", script}, Dir: bc.AppDir, Env: env}); err != nil {
		return cnb.Failf("%s run %s failed (exit status %d); fix the errors above and push again.", pm, script, cnb.ExitCode(err))
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
