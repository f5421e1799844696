package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/skiffhq/skiff"
)

// maxProjectTOML bounds the project descriptor read from untrusted source.
const maxProjectTOML = 1 << 20

// readProject reads the app's project.toml, if it has one.
func readProject(workspace string) (*projectTOML, error) {
	var pt projectTOML
	p := filepath.Join(workspace, "project.toml")
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return &pt, nil
	} else if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, skiff.Errorf(skiff.EINVALID, "project.toml must be a regular file")
	}
	if fi.Size() > maxProjectTOML {
		return nil, skiff.Errorf(skiff.EINVALID, "project.toml is larger than %d bytes", maxProjectTOML)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if err := parseProject(b, &pt); err != nil {
		return nil, err
	}
	return &pt, nil
}

func parseProject(b []byte, pt *projectTOML) error {
	if _, err := toml.Decode(string(b), pt); err != nil {
		return skiff.Errorf(skiff.EINVALID, "project.toml: %v", err)
	}
	return nil
}

// section is the build section in use: schema 0.2's [io.buildpacks] when
// it says anything, else schema 0.1's [build].
func (pt *projectTOML) section() projectBuild {
	io := pt.IO.Buildpacks
	env := io.Build.Env
	if env == nil {
		env = io.Env.Build
	}
	if len(io.Group) > 0 || len(env) > 0 || len(io.Include) > 0 || len(io.Exclude) > 0 {
		return projectBuild{Buildpacks: io.Group, Env: env, Include: io.Include, Exclude: io.Exclude}
	}
	return pt.Build
}

// buildpacks returns the buildpacks project.toml pins, as id[@version].
func (pt *projectTOML) buildpacks() []string {
	var out []string
	for _, bp := range pt.section().Buildpacks {
		switch {
		case bp.ID != "" && bp.Version != "":
			out = append(out, bp.ID+"@"+bp.Version)
		case bp.ID != "":
			out = append(out, bp.ID)
		case bp.URI != "":
			out = append(out, bp.URI)
		}
	}
	return out
}

// env returns project.toml's build environment.
func (pt *projectTOML) env() map[string]string {
	m := map[string]string{}
	for _, e := range pt.section().Env {
		if e.Name != "" {
			m[e.Name] = e.Value
		}
	}
	return m
}

// applyProjectFilters removes what project.toml excludes (or does not
// include) from the workspace. Patterns are gitignore-like globs: a pattern
// without a slash matches a name at any depth, one with a slash matches from
// the root, and a match on a directory covers its contents.
func applyProjectFilters(workspace string, pt *projectTOML) error {
	s := pt.section()
	if len(s.Include) > 0 && len(s.Exclude) > 0 {
		return skiff.Errorf(skiff.EINVALID, "project.toml: use include or exclude, not both")
	}
	if len(s.Include) == 0 && len(s.Exclude) == 0 {
		return nil
	}
	var remove []string
	err := filepath.WalkDir(workspace, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == workspace {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, workspace+string(filepath.Separator)))
		if rel == "project.toml" {
			return nil
		}
		if len(s.Exclude) > 0 && matchAny(s.Exclude, rel) {
			remove = append(remove, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if len(s.Include) > 0 && !matchAny(s.Include, rel) && !d.IsDir() {
			remove = append(remove, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range slices.Backward(remove) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func matchAny(patterns []string, rel string) bool {
	for _, pat := range patterns {
		pat = strings.TrimSuffix(pat, "/")
		if pat == "" {
			continue
		}
		anchored := strings.Contains(pat, "/")
		pat = strings.TrimPrefix(pat, "/")
		parts := strings.Split(rel, "/")
		for i := range parts {
			prefix := strings.Join(parts[:i+1], "/")
			if ok, _ := path.Match(pat, prefix); ok {
				return true
			}
			if !anchored {
				if ok, _ := path.Match(pat, parts[i]); ok {
					return true
				}
			}
		}
	}
	return false
}

// pinnedOrder resolves pinned buildpacks (id or id@version) against the
// builder's /cnb/buildpacks into a one-group order.
func pinnedOrder(rootfs string, pins []string, builder string) (*orderTOML, error) {
	var g orderGroup
	for _, pin := range pins {
		if strings.Contains(pin, "://") || strings.HasPrefix(pin, "urn:") || strings.Contains(pin, ":") {
			return nil, skiff.Errorf(skiff.EINVALID, "buildpack %q: only buildpacks in the builder can be used, by id or id@version", pin)
		}
		id, version, _ := strings.Cut(pin, "@")
		if id == "" || strings.Contains(id, "..") || strings.HasPrefix(id, "/") {
			return nil, skiff.Errorf(skiff.EINVALID, "invalid buildpack id %q", pin)
		}
		dir := filepath.Join(rootfs, "cnb", "buildpacks", strings.ReplaceAll(id, "/", "_"))
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			return nil, skiff.Errorf(skiff.EINVALID, "buildpack %s is not in builder %s%s", id, builder, available(rootfs))
		}
		if version == "" {
			version = highestVersion(ents)
		} else if _, err := os.Stat(filepath.Join(dir, version)); err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "buildpack %s has no version %s in builder %s", id, version, builder)
		}
		g.Group = append(g.Group, buildpackRef{ID: id, Version: version})
	}
	return &orderTOML{Order: []orderGroup{g}}, nil
}

func available(rootfs string) string {
	ents, err := os.ReadDir(filepath.Join(rootfs, "cnb", "buildpacks"))
	if err != nil || len(ents) == 0 {
		return ""
	}
	var ids []string
	for _, e := range ents {
		ids = append(ids, strings.ReplaceAll(e.Name(), "_", "/"))
	}
	return fmt.Sprintf(" (it has %s)", strings.Join(ids, ", "))
}

// highestVersion picks the highest of a buildpack's version directories by
// their numbers, so 0.10.0 comes after 0.9.0 (names that are no versions
// sort below those that are).
func highestVersion(ents []os.DirEntry) string {
	best := ""
	for _, e := range ents {
		if best == "" || versionLess(best, e.Name()) {
			best = e.Name()
		}
	}
	return best
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(strings.TrimPrefix(a, "v"), "."), strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil && nx != ny:
			return nx < ny
		case ex != nil && ey == nil:
			return true
		case ex == nil && ey != nil:
			return false
		case ex != nil && ey != nil && x != y:
			return x < y
		}
	}
	return false
}
