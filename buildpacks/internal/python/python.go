// Package python is the Python buildpack: for an app with a
// requirements.txt, a pyproject.toml, a Pipfile(.lock), a poetry.lock or a
// uv.lock it picks the Python that .python-version (or runtime.txt) asks
// for, the builder's python3 or a newer one from a newer Debian release's
// packages, creates a virtual environment in a launch layer, installs the
// dependencies with pip (a lock file's exact, hash-checked set for Pipenv,
// Poetry and uv), runs Django's collectstatic, and chooses a web process:
// gunicorn when it is a dependency, else python app.py or main.py; a
// Procfile wins over both.
package python

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Buildpack is the Python buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/python",
	Name:        "Python",
	Description: "Python apps: pip, Pipenv, Poetry or uv locks into a virtual environment; Django; gunicorn or a Procfile",
	Detect:      detect,
	Build:       build,
}

// markerFiles make an app a Python app.
var markerFiles = []string{"requirements.txt", "pyproject.toml", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock"}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	for _, f := range markerFiles {
		if fi, err := os.Stat(dc.AppFile(f)); err == nil && fi.Mode().IsRegular() {
			return &cnb.BuildPlan{
				Provides: []cnb.Provide{{Name: "python"}},
				Requires: []cnb.Require{{Name: "python"}},
			}, nil
		}
	}
	return nil, nil
}

// 2: the venv is a launch layer reused from the previous image (a build
// layer too when collectstatic needs it); interpreters from Debian.
const layoutVersion = "2"

type venvMeta struct {
	Layout string `toml:"layout"`
	Python string `toml:"python"`
	Key    string `toml:"key"`
}

// deps is what to install.
type deps struct {
	manager      string   // "pip", "Pipenv", "Poetry", "uv"
	source       string   // the file the dependencies come from
	requirements string   // a requirements file's contents (pip) or the lock's, rendered
	locked       bool     // requirements is a lock's complete set: install with --no-deps
	hashes       bool     // and every entry has hashes
	specifiers   []string // pyproject.toml [project] dependencies
	names        []string // normalized project names
}

func build(bc *cnb.BuildContext) error {
	bc.Log.Step("Python app detected")
	d, err := readDeps(bc)
	if err != nil {
		return err
	}
	req, err := ReadRequest(bc.AppDir)
	if err != nil {
		return err
	}
	out, err := bc.Output(cnb.Cmd{Name: "python3", Args: []string{"-c", `import sys; print("%d.%d.%d" % sys.version_info[:3])`}, Env: bc.Env})
	if err != nil {
		return cnb.Failf("the builder has no working python3: %v", err).Hint("Use a builder image with python3 and python3-venv.")
	}
	builder := Interpreter{Version: strings.TrimSpace(out), Origin: "the builder's"}
	interp, err := Choose(req, builder, DebianPythons, bc.Log.Warn)
	if err != nil {
		return err
	}
	exe, version := "python3", builder.Version
	if interp.Suite != "" {
		arch := bc.Env.Get("CNB_TARGET_ARCH")
		if arch == "" {
			arch = runtime.GOARCH
		}
		if exe, version, err = installDebianPython(bc, interp, arch); err != nil {
			return err
		}
		if req.Patch >= 0 && version != req.String() {
			bc.Log.Warn("%s asks for Python %s; Debian's Python %s is %s, which is used", req.Source, req.String(), interp.Version, version)
		}
	}
	if req.Major == 0 {
		bc.Log.Detail("Using Python %s (%s); a .python-version of %s picks Debian's newer Python", version, interp.Origin, DebianPythons[len(DebianPythons)-1].Version)
	} else {
		bc.Log.Detail("Using Python %s (%s), for %s %s", version, interp.Origin, req.Source, req.Raw)
	}

	pipCache, err := bc.CacheLayer("pip-cache")
	if err != nil {
		return err
	}
	django := slices.Contains(d.names, "django") && cnb.Exists(bc.AppFile("manage.py"))
	collect := django && !truthy(bc.Env.Get("DISABLE_COLLECTSTATIC"))
	venv, err := installVenv(bc, d, exe, version, pipCache, collect)
	if err != nil {
		return err
	}
	if collect {
		if err := collectStatic(bc, venv); err != nil {
			return err
		}
	} else if django {
		bc.Log.Step("Skipping collectstatic (DISABLE_COLLECTSTATIC)")
	}
	if web := webProcess(bc, d); web != nil {
		bc.AddProcess(*web)
		bc.Log.Detail("Process type web -> %s", strings.Join(web.Command, " "))
	} else if !cnb.Exists(bc.AppFile("Procfile")) {
		bc.Log.Warn("no web process: add a Procfile (web: gunicorn myapp.wsgi), or an app.py or main.py")
	}
	return nil
}

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// readDeps finds the app's package manager by its files, as Heroku does:
// uv.lock (uv), poetry.lock (Poetry), Pipfile.lock (Pipenv),
// requirements.txt or pyproject.toml's [project] (pip). Files of two
// managers are an error: which one is meant is a guess.
func readDeps(bc *cnb.BuildContext) (*deps, error) {
	var found []string
	for _, f := range []string{"uv.lock", "poetry.lock", "Pipfile", "requirements.txt"} {
		if cnb.Exists(bc.AppFile(f)) {
			found = append(found, f)
		}
	}
	if len(found) > 1 {
		return nil, cnb.Failf("The app has %s: files of more than one Python package manager, so which installs the dependencies is ambiguous.", strings.Join(found, " and ")).
			Hint("Keep the files of the manager you use (a requirements.txt exported for other tools can go), commit and push again.")
	}
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(bc.AppFile(name))
		if err != nil {
			return nil, err
		}
		if len(data) > maxRequirements*8 {
			return nil, cnb.Failf("%s is larger than %d KiB.", name, maxRequirements*8>>10)
		}
		return data, nil
	}
	lockDeps := func(manager, source string, pkgs []Locked, err error) (*deps, error) {
		if err != nil {
			return nil, err
		}
		text, hashes := LockedRequirements(pkgs)
		var names []string
		for _, p := range pkgs {
			names = append(names, p.Name)
		}
		return &deps{manager: manager, source: source, requirements: text, locked: true, hashes: hashes, names: names}, nil
	}
	pyproject, _ := read("pyproject.toml")
	switch {
	case cnb.Exists(bc.AppFile("uv.lock")):
		data, err := read("uv.lock")
		if err != nil {
			return nil, err
		}
		pkgs, err := ParseUVLock(data)
		return lockDeps("uv", "uv.lock", pkgs, err)
	case cnb.Exists(bc.AppFile("poetry.lock")):
		data, err := read("poetry.lock")
		if err != nil {
			return nil, err
		}
		roots, err := PoetryRoots(pyproject)
		if err != nil {
			return nil, err
		}
		pkgs, err := ParsePoetryLock(data, roots)
		return lockDeps("Poetry", "poetry.lock", pkgs, err)
	case cnb.Exists(bc.AppFile("Pipfile")):
		data, err := read("Pipfile.lock")
		if err != nil {
			return nil, cnb.Failf("The app has a Pipfile but no Pipfile.lock, which says exactly what to install.").
				Hint("Run pipenv lock, commit Pipfile.lock and push again.")
		}
		pkgs, err := ParsePipfileLock(data)
		return lockDeps("Pipenv", "Pipfile.lock", pkgs, err)
	case cnb.Exists(bc.AppFile("requirements.txt")):
		data, err := read("requirements.txt")
		if err != nil {
			return nil, err
		}
		if len(data) > maxRequirements {
			return nil, cnb.Failf("requirements.txt is larger than %d KiB", maxRequirements>>10)
		}
		return &deps{manager: "pip", source: "requirements.txt", requirements: string(data), names: RequirementNames(string(data))}, nil
	case pyproject != nil:
		specs, err := ParsePyproject(pyproject)
		if err != nil {
			return nil, err
		}
		return &deps{manager: "pip", source: "pyproject.toml", specifiers: specs, names: RequirementNames(strings.Join(specs, "\n"))}, nil
	}
	return nil, cnb.Failf("The app has Pipfile.lock but no Pipfile.").Hint("Commit the Pipfile with it.")
}

// installVenv makes the venv layer hold a virtual environment with the
// dependencies. While they, the interpreter and the index settings stay
// the same, the previous image's venv is reused as it is (declared, not
// restored); when the build itself needs the venv (collectstatic), it is a
// cached build layer as well. It returns the venv's path.
func installVenv(bc *cnb.BuildContext, d *deps, exe, version, pipCache string, forBuild bool) (string, error) {
	layer, err := bc.Layer("venv")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "layout=%s python=%s exe=%s manager=%s source=%s\n%s\n%s", layoutVersion, version, exe, d.manager, d.source, d.requirements, strings.Join(d.specifiers, "\n"))
	for _, k := range []string{"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"} {
		fmt.Fprintf(h, "\n%s=%s", k, bc.Env.Get(k))
	}
	meta := venvMeta{Layout: layoutVersion, Python: version, Key: hex.EncodeToString(h.Sum(nil))}
	types := cnb.LayerTypes{Launch: true, Build: forBuild, Cache: forBuild}
	commit := func() error {
		if err := layer.Commit(types, meta); err != nil {
			return err
		}
		if !layer.HasContents() {
			return nil // the previous image's, env files included
		}
		if err := layer.SetEnv(cnb.EnvBoth, "VIRTUAL_ENV", cnb.EnvOverride, layer.Path); err != nil {
			return err
		}
		// Logs reach the platform as they are written, as on Heroku.
		return layer.SetEnv(cnb.EnvLaunch, "PYTHONUNBUFFERED", cnb.EnvDefault, "1")
	}

	bc.Log.Step("Installing dependencies (%s, %s)", d.manager, d.source)
	if layer.SameMetadata(meta) {
		switch {
		case !forBuild:
			bc.Log.Detail("Reusing the previous image's virtual environment (%s unchanged)", d.source)
			return layer.Path, commit()
		case layer.HasContents() && cnb.Exists(filepath.Join(layer.Path, "bin", "python")):
			bc.Log.Detail("Reusing the virtual environment (%s unchanged)", d.source)
			return layer.Path, commit()
		}
	}
	if err := layer.Reset(); err != nil {
		return "", err
	}
	start := time.Now()
	venvEnv := reproducible(bc.Env)
	if err := createVenv(bc, venvEnv, exe, layer.Path); err != nil {
		return "", err
	}
	env := venvEnv.PrependPath(filepath.Join(layer.Path, "bin")).With("VIRTUAL_ENV="+layer.Path, "PIP_NO_WARN_SCRIPT_LOCATION=1",
		"PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1", "PIP_ROOT_USER_ACTION=ignore")
	args := []string{"-m", "pip", "install", "--cache-dir", pipCache}
	switch {
	case d.locked:
		if strings.TrimSpace(d.requirements) == "" {
			bc.Log.Detail("%s locks no packages", d.source)
			bc.Log.Done(start)
			return layer.Path, commit()
		}
		reqs := filepath.Join(bc.LayersDir, "locked-requirements.txt")
		if err := os.WriteFile(reqs, []byte(d.requirements), 0o644); err != nil {
			return "", err
		}
		defer os.Remove(reqs)
		n := strings.Count(d.requirements, "\n")
		if d.hashes {
			bc.Log.Detail("Installing the %d packages %s pins, their hashes checked", n, d.source)
			args = append(args, "--require-hashes")
		} else {
			bc.Log.Detail("Installing the %d packages %s pins (not all have hashes)", n, d.source)
		}
		args = append(args, "--no-deps", "-r", reqs)
	case hasEntries(d.requirements):
		args = append(args, "-r", "requirements.txt")
	case len(d.specifiers) > 0:
		args = append(args, d.specifiers...)
	default:
		bc.Log.Detail("No dependencies to install")
		bc.Log.Done(start)
		return layer.Path, commit()
	}
	output := &tail{max: maxPipOutput}
	if err := bc.RunTee(cnb.Cmd{Name: filepath.Join(layer.Path, "bin", "python"), Args: args, Dir: bc.AppDir, Env: env}, output); err != nil {
		if bc.Context.Err() != nil {
			return "", err
		}
		index := bc.Env.Get("PIP_INDEX_URL")
		if index == "" {
			index = "https://pypi.org/simple"
		}
		return "", pipFailure(output.String(), index, d.source, cnb.ExitCode(err), probeIndex(bc.Context))
	}
	bc.Log.Done(start)
	return layer.Path, commit()
}

// createVenv makes a virtual environment with pip at dir. Debian's Pythons
// from a layer bring pip as a wheel of their own (their ensurepip looks in
// the system's /usr/share/python-wheels, which is the builder's).
func createVenv(bc *cnb.BuildContext, env cnb.Env, exe, dir string) error {
	if exe == "python3" {
		if err := bc.Run(cnb.Cmd{Name: "python3", Args: []string{"-m", "venv", dir}, Dir: bc.AppDir, Env: env}); err != nil {
			return cnb.Failf("python3 -m venv failed: %v", err).Hint("The builder needs python3-venv.")
		}
		return nil
	}
	if err := bc.Run(cnb.Cmd{Name: exe, Args: []string{"-m", "venv", "--without-pip", dir}, Dir: bc.AppDir, Env: env}); err != nil {
		return fmt.Errorf("create the virtual environment: %w", err)
	}
	wheels, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(exe)), "share", "python-wheels", "pip-*.whl"))
	if len(wheels) == 0 {
		return fmt.Errorf("Debian's Python has no pip wheel (python3-pip-whl)")
	}
	return bc.Run(cnb.Cmd{Name: filepath.Join(dir, "bin", "python"), Args: []string{filepath.Join(wheels[0], "pip"), "install", "--no-index", "--no-cache-dir",
		"--disable-pip-version-check", "--quiet", wheels[0]}, Dir: bc.AppDir, Env: env})
}

// reproducible is env for making the venv: with SOURCE_DATE_EPOCH set (to
// the time the lifecycle gives every file of a layer, unless the app set
// its own), Python compiles bytecode that records its source's hash rather
// than its mtime, so a venv made again from the same dependencies is the
// same layer, byte for byte, as the one the previous image reused.
func reproducible(env cnb.Env) cnb.Env {
	if _, ok := env.Lookup("SOURCE_DATE_EPOCH"); ok {
		return env
	}
	return env.With("SOURCE_DATE_EPOCH=315532801") // 1980-01-01T00:00:01Z
}

// collectStatic runs Django's collectstatic, as Heroku does; a failure
// fails the build (the app would serve no static files), unless the app
// opts out with DISABLE_COLLECTSTATIC=1.
func collectStatic(bc *cnb.BuildContext, venv string) error {
	bc.Log.Step("Running collectstatic (python manage.py collectstatic --noinput)")
	env := bc.Env.PrependPath(filepath.Join(venv, "bin")).With("VIRTUAL_ENV=" + venv)
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: filepath.Join(venv, "bin", "python"), Args: []string{"manage.py", "collectstatic", "--noinput"}, Dir: bc.AppDir, Env: env}); err != nil {
		return cnb.Failf("python manage.py collectstatic --noinput failed (exit status %d); the output above says why.", cnb.ExitCode(err)).
			Hint("Set STATIC_ROOT in the settings, or set DISABLE_COLLECTSTATIC=1 as a build-time config var to skip collectstatic.")
	}
	bc.Log.Done(start)
	return nil
}

// webProcess picks the web process when there is no Procfile.
func webProcess(bc *cnb.BuildContext, d *deps) *cnb.Process {
	if cnb.Exists(bc.AppFile("Procfile")) {
		return nil
	}
	if slices.Contains(d.names, "gunicorn") {
		if mod := wsgiModule(bc.AppDir); mod != "" {
			// gunicorn binds 0.0.0.0:$PORT by itself when PORT is set.
			return &cnb.Process{Type: "web", Command: []string{"gunicorn", mod}, Default: true}
		}
		bc.Log.Warn("gunicorn is a dependency but no WSGI module was found (wsgi.py, app.py, main.py or <project>/wsgi.py); add a Procfile")
		return nil
	}
	for _, f := range []string{"app.py", "main.py"} {
		if fi, err := os.Stat(bc.AppFile(f)); err == nil && fi.Mode().IsRegular() {
			return &cnb.Process{Type: "web", Command: []string{"python", f}, Default: true}
		}
	}
	return nil
}

// wsgiModule guesses gunicorn's WSGI application: a Django project's
// <project>/wsgi.py, a wsgi.py, or the "app" object of app.py or main.py.
func wsgiModule(app string) string {
	if cnb.Exists(filepath.Join(app, "manage.py")) {
		matches, _ := filepath.Glob(filepath.Join(app, "*", "wsgi.py"))
		if len(matches) == 1 {
			return filepath.Base(filepath.Dir(matches[0])) + ".wsgi"
		}
	}
	switch {
	case cnb.Exists(filepath.Join(app, "wsgi.py")):
		return "wsgi"
	case cnb.Exists(filepath.Join(app, "app.py")):
		return "app:app"
	case cnb.Exists(filepath.Join(app, "main.py")):
		return "main:app"
	}
	return ""
}
