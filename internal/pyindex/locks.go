package pyindex

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Lock files in the formats of Pipenv, Poetry and uv, resolved against the
// index, with the wheels' hashes. Each also locks colorama for click on
// Windows only (platform_system == "Windows"), a package the index does not
// have: an installer that ignores markers fails on it.

// windowsOnly is the marker of the Windows-only edge every lock has.
const windowsOnly = `platform_system == "Windows"`

// resolve returns the projects roots need (by the wheels' non-extra
// requirements), sorted, and each project's direct dependencies.
func (ix *Index) resolve(roots []string) ([]*Wheel, map[string][]string, error) {
	deps := map[string][]string{}
	seen := map[string]bool{}
	todo := append([]string(nil), roots...)
	for len(todo) > 0 {
		n := Normalize(todo[0])
		todo = todo[1:]
		if seen[n] {
			continue
		}
		w := ix.Wheels[n]
		if w == nil {
			return nil, nil, fmt.Errorf("the index has no %s", n)
		}
		seen[n] = true
		for _, r := range w.Requires {
			if strings.Contains(r, ";") {
				continue // extras and platform-only requirements (click's colorama, written by each lock itself)
			}
			name := Normalize(strings.FieldsFunc(r, func(c rune) bool { return strings.ContainsRune("<>=!~;[ (", c) })[0])
			if _, ok := ix.Wheels[name]; !ok && name == "setuptools" {
				continue
			}
			deps[n] = append(deps[n], name)
			todo = append(todo, name)
		}
	}
	var out []*Wheel
	for n := range seen {
		out = append(out, ix.Wheels[n])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, deps, nil
}

const fakeHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// PipfileLock returns a Pipfile.lock with roots in "default" and dev in
// "develop".
func (ix *Index) PipfileLock(roots, dev []string) (string, error) {
	section := func(names []string) (map[string]any, error) {
		ws, _, err := ix.resolve(names)
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, w := range ws {
			out[w.Name] = map[string]any{"hashes": []string{w.Hash()}, "index": "pypi", "version": "==" + w.Version}
		}
		if _, ok := out["click"]; ok {
			out["colorama"] = map[string]any{"hashes": []string{fakeHash}, "index": "pypi", "markers": windowsOnly, "version": "==0.4.6"}
		}
		return out, nil
	}
	def, err := section(roots)
	if err != nil {
		return "", err
	}
	develop, err := section(dev)
	if err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(map[string]any{
		"_meta":   map[string]any{"hash": map[string]string{"sha256": "test"}, "pipfile-spec": 6, "requires": map[string]string{}, "sources": []map[string]any{{"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": true}}},
		"default": def, "develop": develop,
	}, "", "    ")
	return string(b) + "\n", err
}

// PoetryLock returns a poetry.lock of lock-version 2.0, which records no
// groups: an installer finds the main group's packages by walking from
// pyproject.toml's dependencies.
func (ix *Index) PoetryLock(roots, dev []string) (string, error) {
	ws, deps, err := ix.resolve(append(append([]string(nil), roots...), dev...))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "[[package]]\nname = %q\nversion = %q\ndescription = \"\"\noptional = false\npython-versions = \">=3.7\"\nfiles = [\n    {file = %q, hash = %q},\n]\n\n", w.Name, w.Version, w.File, w.Hash())
		if len(deps[w.Name]) > 0 || w.Name == "click" {
			b.WriteString("[package.dependencies]\n")
			for _, d := range deps[w.Name] {
				fmt.Fprintf(&b, "%s = \"*\"\n", d)
			}
			if w.Name == "click" {
				fmt.Fprintf(&b, "colorama = {version = \"*\", markers = %q}\n", windowsOnly)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("[[package]]\nname = \"colorama\"\nversion = \"0.4.6\"\ndescription = \"\"\noptional = false\npython-versions = \">=3.7\"\nfiles = [\n    {file = \"colorama-0.4.6-py2.py3-none-any.whl\", hash = \"" + fakeHash + "\"},\n]\n\n")
	b.WriteString("[metadata]\nlock-version = \"2.0\"\npython-versions = \"^3.11\"\ncontent-hash = \"test\"\n")
	return b.String(), nil
}

// UVLock returns a uv.lock for the project name with roots as its
// dependencies and dev as its dev dependency group.
func (ix *Index) UVLock(name string, roots, dev []string) (string, error) {
	ws, deps, err := ix.resolve(append(append([]string(nil), roots...), dev...))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("version = 1\nrevision = 2\nrequires-python = \">=3.11\"\n\n")
	list := func(names []string) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("    { name = %q },\n", Normalize(n)))
		}
		return "[\n" + strings.Join(parts, "") + "]"
	}
	b.WriteString("[[package]]\nname = \"colorama\"\nversion = \"0.4.6\"\nsource = { registry = \"https://pypi.org/simple\" }\nwheels = [\n    { url = \"https://files.example/colorama-0.4.6-py2.py3-none-any.whl\", hash = \"" + fakeHash + "\", size = 1 },\n]\n\n")
	for _, w := range ws {
		fmt.Fprintf(&b, "[[package]]\nname = %q\nversion = %q\nsource = { registry = \"https://pypi.org/simple\" }\n", w.Name, w.Version)
		d := deps[w.Name]
		if len(d) > 0 || w.Name == "click" {
			var parts []string
			for _, n := range d {
				parts = append(parts, fmt.Sprintf("    { name = %q },\n", n))
			}
			if w.Name == "click" {
				parts = append(parts, fmt.Sprintf("    { name = \"colorama\", marker = %q },\n", strings.ReplaceAll(windowsOnly, `"`, "'")))
			}
			b.WriteString("dependencies = [\n" + strings.Join(parts, "") + "]\n")
		}
		fmt.Fprintf(&b, "wheels = [\n    { url = \"https://files.example/%s\", hash = %q, size = %d },\n]\n\n", w.File, w.Hash(), len(w.data))
	}
	fmt.Fprintf(&b, "[[package]]\nname = %q\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = %s\n\n[package.dev-dependencies]\ndev = %s\n", name, list(roots), list(dev))
	return b.String(), nil
}

// Lock returns the lock file of a manager ("pipenv", "poetry" or "uv") for
// a project with roots as its dependencies and dev as its dev ones: the
// file's name and contents.
func (ix *Index) Lock(manager, project string, roots, dev []string) (string, string, error) {
	switch manager {
	case "pipenv":
		body, err := ix.PipfileLock(roots, dev)
		return "Pipfile.lock", body, err
	case "poetry":
		body, err := ix.PoetryLock(roots, dev)
		return "poetry.lock", body, err
	case "uv":
		body, err := ix.UVLock(project, roots, dev)
		return "uv.lock", body, err
	}
	return "", "", fmt.Errorf("no lock file for %q", manager)
}
