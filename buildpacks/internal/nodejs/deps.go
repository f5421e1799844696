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
)

// deps is how the app's dependencies are installed and kept.
//
// node_modules is a real directory of the app while the build runs
// (bundlers such as Turbopack resolve nothing outside the app), installed
// with devDependencies. A copy of it is kept in a cache layer (modules-build)
// when there is a build step, so an unchanged lockfile restores it instead
// of installing again. After the build the devDependencies are pruned and
// node_modules moves into the launch layer "modules", which the app's
// node_modules links to at run time; while the lockfile, the package.json
// fields an install reads, Node.js and the package manager stay the same,
// that layer is the previous image's, reused by the exporter as it is.
type deps struct {
	bc      *cnb.BuildContext
	env     cnb.Env
	pm      *manager
	rt      *runtimeInfo
	pj      *PackageJSON
	lock    string // lockfile, "" for none
	omitDev bool   // NPM_CONFIG_PRODUCTION=true: install without devDependencies
	prune   bool   // prune devDependencies for launch
	pnp     bool   // Yarn Plug'n'Play: no node_modules; the Yarn cache is the install
	key     string // what node_modules is made from
}

type modulesMeta struct {
	Layout string `toml:"layout"`
	Key    string `toml:"key"`
	Pruned string `toml:"pruned"` // "true" when devDependencies were pruned
}

// configFiles change what an install does besides package.json and the
// lockfile.
var configFiles = []string{".npmrc", ".yarnrc", ".yarnrc.yml", "pnpm-workspace.yaml", ".pnpmfile.cjs"}

func (d *deps) computeKey() error {
	h := sha256.New()
	fmt.Fprintf(h, "layout=%s node=%s npm=%s pm=%s@%s omitdev=%v\n%s\n", layoutVersion, d.rt.Node, d.rt.NPM, d.pm.Name, d.pm.Version, d.omitDev, d.pj.InstallFields)
	for _, f := range append([]string{d.lock}, configFiles...) {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(d.bc.AppFile(f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	d.key = hex.EncodeToString(h.Sum(nil))
	return nil
}

func (d *deps) launchMeta() modulesMeta {
	return modulesMeta{Layout: layoutVersion, Key: d.key, Pruned: fmt.Sprint(d.prune && !d.omitDev)}
}

// reusable reports whether the previous image's node_modules is the one
// this build would make.
func (d *deps) reusable() (bool, error) {
	if d.pnp {
		return false, nil
	}
	l, err := d.bc.Layer("modules")
	if err != nil {
		return false, err
	}
	return l.SameMetadata(d.launchMeta()), nil
}

// forBuild puts the complete node_modules in the app: from the cache when
// it was made from the same inputs, else by installing. keep says whether
// to cache it for the next build.
func (d *deps) forBuild(keep bool) error {
	bc := d.bc
	appModules := bc.AppFile("node_modules")
	if fi, err := os.Lstat(appModules); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			bc.Log.Warn("node_modules is checked into git; it is replaced by a fresh install (add node_modules to .gitignore)")
		}
		if err := os.RemoveAll(appModules); err != nil {
			return err
		}
	}
	cache, err := bc.Layer("modules-build")
	if err != nil {
		return err
	}
	meta := modulesMeta{Layout: layoutVersion, Key: d.key}
	if !d.pnp && cache.SameMetadata(meta) && cnb.Exists(filepath.Join(cache.Path, "node_modules")) {
		start := time.Now()
		bc.Log.Detail("Restoring node_modules from the cache (%s unchanged)", nonEmpty(d.lock, "package.json"))
		if err := copyTree(filepath.Join(cache.Path, "node_modules"), appModules); err != nil {
			return fmt.Errorf("restore node_modules: %w", err)
		}
		bc.Log.Done(start)
		if keep {
			return cache.Commit(cnb.LayerTypes{Cache: true}, meta)
		}
		return cache.Remove()
	}
	if err := d.install(); err != nil {
		return err
	}
	if !keep || d.pnp || !cnb.Exists(appModules) {
		return cache.Remove()
	}
	if err := cache.Reset(); err != nil {
		return err
	}
	if err := copyTree(appModules, filepath.Join(cache.Path, "node_modules")); err != nil {
		return fmt.Errorf("cache node_modules: %w", err)
	}
	return cache.Commit(cnb.LayerTypes{Cache: true}, meta)
}

// install runs the package manager in the app.
func (d *deps) install() error {
	bc := d.bc
	var args []string
	frozen := d.lock != ""
	switch {
	case d.pm.Name == "npm" && frozen:
		args = []string{"ci"}
	case d.pm.Name == "npm":
		args = []string{"install"}
	case d.pm.Name == "yarn" && d.pm.Berry:
		args = []string{"install"}
		if frozen {
			args = append(args, "--immutable")
		}
	case d.pm.Name == "yarn":
		args = []string{"install", "--non-interactive", "--prefer-offline", "--production=" + fmt.Sprint(d.omitDev)}
		if frozen {
			args = append(args, "--frozen-lockfile")
		}
	case d.pm.Name == "pnpm":
		args = []string{"install"}
		if frozen {
			args = append(args, "--frozen-lockfile")
		}
		if d.omitDev {
			args = append(args, "--prod")
		}
	}
	if d.pm.Name == "npm" {
		if d.omitDev {
			args = append(args, "--omit=dev")
		} else {
			args = append(args, "--include=dev")
		}
	}
	cmd := d.pm.Name + " " + strings.Join(args, " ")
	if frozen {
		bc.Log.Detail("Running %s (%s)", cmd, d.lock)
	} else {
		bc.Log.Detail("Running %s (no lockfile: commit one for repeatable installs)", cmd)
	}
	if d.omitDev {
		bc.Log.Detail("Without devDependencies (NPM_CONFIG_PRODUCTION=true)")
	}
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: d.pm.Name, Args: args, Dir: bc.AppDir, Env: d.env}); err != nil {
		return cnb.Failf("%s failed (exit status %d); the %s output above says why.", cmd, cnb.ExitCode(err), d.pm.Name).
			Hint("Check that package.json and %s agree (run %s install locally and commit both).", nonEmpty(d.lock, "its lockfile"), d.pm.Name)
	}
	bc.Log.Done(start)
	return nil
}

// forLaunch gives the image its node_modules: the previous image's when
// reusable, else the app's, pruned of devDependencies, moved into the
// modules layer. The app's node_modules becomes a link to the layer.
func (d *deps) forLaunch(reusable bool) error {
	bc := d.bc
	appModules := bc.AppFile("node_modules")
	layer, err := bc.Layer("modules")
	if err != nil {
		return err
	}
	if d.pnp {
		// The install is .pnp.cjs and the Yarn cache: pruning rewrites the
		// former, and the cache is a launch layer of its own.
		if d.prune && !d.omitDev {
			if err := d.pruneDev(); err != nil {
				return err
			}
		}
		return layer.Remove()
	}
	target := filepath.Join(layer.Path, "node_modules")
	link := func() error {
		if err := os.RemoveAll(appModules); err != nil {
			return err
		}
		return os.Symlink(target, appModules)
	}
	if reusable {
		bc.Log.Detail("Reusing the previous image's node_modules (%s unchanged)", nonEmpty(d.lock, "package.json"))
		if err := link(); err != nil {
			return err
		}
		return layer.Commit(cnb.LayerTypes{Launch: true}, d.launchMeta())
	}
	if d.prune && !d.omitDev && cnb.Exists(appModules) {
		if err := d.pruneDev(); err != nil {
			return err
		}
	}
	if err := layer.Reset(); err != nil {
		return err
	}
	if cnb.Exists(appModules) {
		if err := move(appModules, target); err != nil {
			return fmt.Errorf("move node_modules into its layer: %w", err)
		}
	} else if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := link(); err != nil {
		return err
	}
	return layer.Commit(cnb.LayerTypes{Launch: true}, d.launchMeta())
}

// pruneDev removes devDependencies from the app's node_modules, with each
// manager's own command, as Heroku does.
func (d *deps) pruneDev() error {
	bc := d.bc
	var args []string
	switch {
	case d.pm.Name == "npm" && strings.HasPrefix(d.rt.NPM, "6."):
		args = []string{"prune", "--production"}
	case d.pm.Name == "npm":
		args = []string{"prune", "--omit=dev"}
	case d.pm.Name == "pnpm":
		args = []string{"prune", "--prod"}
	case d.pm.Name == "yarn" && d.pm.Berry && d.pm.major() < 4:
		bc.Log.Step("Pruning devDependencies")
		bc.Log.Detail("Kept: Yarn %s prunes only with its workspace-tools plugin; set YARN_PRODUCTION=false to silence this", d.pm.Version)
		return nil
	case d.pm.Name == "yarn" && d.pm.Berry:
		args = []string{"workspaces", "focus", "--all", "--production"}
	case d.pm.Name == "yarn":
		args = []string{"install", "--production=true", "--ignore-scripts", "--prefer-offline", "--non-interactive"}
		if d.lock != "" {
			args = append(args, "--frozen-lockfile")
		}
	}
	bc.Log.Step("Pruning devDependencies (%s %s)", d.pm.Name, strings.Join(args, " "))
	bc.Log.Detail("NPM_CONFIG_PRODUCTION=false or YARN_PRODUCTION=false as a build-time config var keeps them")
	start := time.Now()
	if err := bc.Run(cnb.Cmd{Name: d.pm.Name, Args: args, Dir: bc.AppDir, Env: d.env}); err != nil {
		return cnb.Failf("%s %s failed (exit status %d); the output above says why.", d.pm.Name, strings.Join(args, " "), cnb.ExitCode(err)).
			Hint("Set NPM_CONFIG_PRODUCTION=false (or YARN_PRODUCTION=false) as a build-time config var to keep the devDependencies instead.")
	}
	bc.Log.Done(start)
	return nil
}

// settings reads the install settings from the build-time config vars, as
// Heroku's: NPM_CONFIG_PRODUCTION=true installs without devDependencies,
// NPM_CONFIG_PRODUCTION=false, YARN_PRODUCTION=false or
// YARN2_SKIP_PRUNING=true keep them at launch.
func settings(env cnb.Env) (omitDev, prune bool) {
	get := func(k string) string {
		v, ok := env.Lookup(k)
		if !ok {
			v = env.Get(strings.ToLower(k))
		}
		return strings.ToLower(strings.TrimSpace(v))
	}
	omitDev = get("NPM_CONFIG_PRODUCTION") == "true"
	prune = get("NPM_CONFIG_PRODUCTION") != "false" && get("YARN_PRODUCTION") != "false" && get("YARN2_SKIP_PRUNING") != "true"
	return omitDev, prune
}
