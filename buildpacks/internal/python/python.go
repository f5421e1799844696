// Package python is the Python buildpack: for an app with a
// requirements.txt or a pyproject.toml it creates a virtual environment
// with the base image's python3 in a cached launch layer, installs the
// dependencies with pip (its wheel cache in a cache layer), and chooses a
// web process: gunicorn when it is a dependency, else python app.py or
// main.py; a Procfile wins over both. The run image's python3 must be the
// build image's, which a builder made from one distribution release gives.
package python

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Buildpack is the Python buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/python",
	Name:        "Python",
	Description: "Python apps: pip into a virtual environment, gunicorn or a Procfile",
	Detect:      detect,
	Build:       build,
}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	for _, f := range []string{"requirements.txt", "pyproject.toml"} {
		if fi, err := os.Stat(dc.AppFile(f)); err == nil && fi.Mode().IsRegular() {
			return &cnb.BuildPlan{
				Provides: []cnb.Provide{{Name: "python"}},
				Requires: []cnb.Require{{Name: "python"}},
			}, nil
		}
	}
	return nil, nil
}

const layoutVersion = "1" // metadata holds strings only: it round-trips through JSON

type venvMeta struct {
	Layout string `toml:"layout"`
	Python string `toml:"python"`
	Key    string `toml:"key"`
}

// deps is what to install: a requirements file or a list of specifiers.
type deps struct {
	source       string   // "requirements.txt", "pyproject.toml"
	requirements string   // contents of requirements.txt
	specifiers   []string // pyproject.toml [project] dependencies
	names        []string // normalized project names
}

func build(bc *cnb.BuildContext) error {
	bc.Log.Step("Python app detected")
	d, err := readDeps(bc)
	if err != nil {
		return err
	}
	version, err := bc.Output(cnb.Cmd{Name: "python3", Args: []string{"-c", `import sys; print("%d.%d.%d" % sys.version_info[:3])`}, Env: bc.Env})
	if err != nil {
		return cnb.Failf("the builder has no working python3: %v", err).Hint("Use a builder image with python3 and python3-venv.")
	}
	version = strings.TrimSpace(version)
	bc.Log.Detail("Using Python %s from the builder", version)
	warnRequestedVersion(bc, version)

	pipCache, err := bc.CacheLayer("pip-cache")
	if err != nil {
		return err
	}
	if err := installVenv(bc, d, version, pipCache); err != nil {
		return err
	}
	if web := webProcess(bc, d); web != nil {
		bc.AddProcess(*web)
		bc.Log.Detail("Process type web -> %s", strings.Join(web.Command, " "))
	} else if !cnb.Exists(bc.AppFile("Procfile")) {
		bc.Log.Warn("no web process: add a Procfile (web: gunicorn myapp.wsgi), or an app.py or main.py")
	}
	return nil
}

func readDeps(bc *cnb.BuildContext) (*deps, error) {
	if data, err := os.ReadFile(bc.AppFile("requirements.txt")); err == nil {
		if len(data) > maxRequirements {
			return nil, cnb.Failf("requirements.txt is larger than %d KiB", maxRequirements>>10)
		}
		return &deps{source: "requirements.txt", requirements: string(data), names: RequirementNames(string(data))}, nil
	}
	data, err := os.ReadFile(bc.AppFile("pyproject.toml"))
	if err != nil {
		return nil, err
	}
	specs, err := ParsePyproject(data)
	if err != nil {
		return nil, err
	}
	return &deps{source: "pyproject.toml", specifiers: specs, names: RequirementNames(strings.Join(specs, "\n"))}, nil
}

// installVenv makes the venv layer hold a virtual environment with the
// dependencies, reusing it untouched while they and the interpreter are
// the same.
func installVenv(bc *cnb.BuildContext, d *deps, version, pipCache string) error {
	layer, err := bc.Layer("venv")
	if err != nil {
		return err
	}
	h := sha256.New()
	fmt.Fprintf(h, "layout=%s python=%s source=%s\n%s\n%s", layoutVersion, version, d.source, d.requirements, strings.Join(d.specifiers, "\n"))
	for _, k := range []string{"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"} {
		fmt.Fprintf(h, "\n%s=%s", k, bc.Env.Get(k))
	}
	meta := venvMeta{Layout: layoutVersion, Python: version, Key: hex.EncodeToString(h.Sum(nil))}
	commit := func() error {
		if err := layer.Commit(cnb.LayerTypes{Build: true, Launch: true, Cache: true}, meta); err != nil {
			return err
		}
		if err := layer.SetEnv(cnb.EnvBoth, "VIRTUAL_ENV", cnb.EnvOverride, layer.Path); err != nil {
			return err
		}
		// Logs reach the platform as they are written, as on Heroku.
		return layer.SetEnv(cnb.EnvLaunch, "PYTHONUNBUFFERED", cnb.EnvDefault, "1")
	}

	bc.Log.Step("Installing dependencies (%s)", d.source)
	var old venvMeta
	if ok, _ := layer.Metadata(&old); ok && old == meta && layer.HasContents() && cnb.Exists(filepath.Join(layer.Path, "bin", "python")) {
		bc.Log.Detail("Reusing the virtual environment (%s unchanged)", d.source)
		return commit()
	}
	if err := layer.Reset(); err != nil {
		return err
	}
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: "python3", Args: []string{"-m", "venv", layer.Path}, Dir: bc.AppDir, Env: bc.Env}); err != nil {
		return cnb.Failf("python3 -m venv failed: %v", err).Hint("The builder needs python3-venv.")
	}
	args := []string{"-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--cache-dir", pipCache}
	switch {
	case hasEntries(d.requirements):
		args = append(args, "-r", "requirements.txt")
	case len(d.specifiers) > 0:
		args = append(args, d.specifiers...)
	default:
		bc.Log.Detail("No dependencies to install")
		bc.Log.Done(start)
		return commit()
	}
	env := bc.Env.PrependPath(filepath.Join(layer.Path, "bin")).With("VIRTUAL_ENV="+layer.Path, "PIP_NO_WARN_SCRIPT_LOCATION=1")
	if err := bc.Run(cnb.Cmd{Name: filepath.Join(layer.Path, "bin", "python"), Args: args, Dir: bc.AppDir, Env: env}); err != nil {
		return cnb.Failf("pip install failed (exit status %d); the pip output above says why", cnb.ExitCode(err)).
			Hint("Check %s; packages built from source may need a builder with their C libraries.", d.source)
	}
	bc.Log.Done(start)
	return commit()
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

// warnRequestedVersion tells the user when runtime.txt or .python-version
// asks for another Python than the builder has.
func warnRequestedVersion(bc *cnb.BuildContext, have string) {
	for _, f := range []string{".python-version", "runtime.txt"} {
		data, err := os.ReadFile(bc.AppFile(f))
		if err != nil {
			continue
		}
		want := strings.TrimPrefix(strings.TrimSpace(string(data)), "python-")
		if want == "" {
			continue
		}
		if have != want && !strings.HasPrefix(have, want+".") {
			bc.Log.Warn("%s asks for Python %s, but this builder has Python %s, which is used", f, want, have)
		}
		return
	}
}
