package build

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProjectTOML(t *testing.T) {
	v2 := `[_]
schema-version = "0.2"
[io.buildpacks]
exclude = ["*.log", "/secrets", "node_modules/"]
[[io.buildpacks.group]]
id = "skiff/nodejs"
[[io.buildpacks.group]]
id = "skiff/procfile"
version = "0.1.0"
[[io.buildpacks.build.env]]
name = "NODE_ENV"
value = "production"
`
	v1 := `[build]
include = ["src/*", "Procfile"]
[[build.buildpacks]]
id = "skiff/go"
[[build.env]]
name = "GOFLAGS"
value = "-mod=vendor"
`
	for _, c := range []struct {
		text    string
		bps     []string
		env     map[string]string
		keep    []string
		removed []string
	}{
		{v2, []string{"skiff/nodejs", "skiff/procfile@0.1.0"}, map[string]string{"NODE_ENV": "production"},
			[]string{"app.js", "src/main.go", "src/x/secrets"}, []string{"debug.log", "src/x/debug.log", "secrets", "node_modules"}},
		{v1, []string{"skiff/go"}, map[string]string{"GOFLAGS": "-mod=vendor"},
			[]string{"src/main.go", "Procfile", "project.toml"}, []string{"app.js", "debug.log"}},
	} {
		var pt projectTOML
		if err := parseProject([]byte(c.text), &pt); err != nil {
			t.Fatal(err)
		}
		if got := pt.buildpacks(); !slices.Equal(got, c.bps) {
			t.Errorf("buildpacks %v, want %v", got, c.bps)
		}
		if got := pt.env(); len(got) != len(c.env) || got[sortedKeys(c.env)[0]] != c.env[sortedKeys(c.env)[0]] {
			t.Errorf("env %v, want %v", got, c.env)
		}
		ws := t.TempDir()
		for _, f := range []string{"app.js", "debug.log", "src/main.go", "src/x/debug.log", "src/x/secrets", "secrets/key", "node_modules/a/index.js", "Procfile", "project.toml"} {
			os.MkdirAll(filepath.Join(ws, filepath.Dir(f)), 0o755)
			os.WriteFile(filepath.Join(ws, f), []byte("x"), 0o644)
		}
		if err := applyProjectFilters(ws, &pt); err != nil {
			t.Fatal(err)
		}
		for _, f := range c.keep {
			if _, err := os.Stat(filepath.Join(ws, f)); err != nil {
				t.Errorf("%s removed", f)
			}
		}
		for _, f := range c.removed {
			if _, err := os.Stat(filepath.Join(ws, f)); err == nil {
				t.Errorf("%s kept", f)
			}
		}
	}
	var bad projectTOML
	if err := parseProject([]byte("[io.buildpacks\n"), &bad); err == nil {
		t.Error("malformed project.toml accepted")
	}
}

func FuzzProjectTOML(f *testing.F) {
	f.Add("[io.buildpacks]\nexclude = [\"*.log\"]\n[[io.buildpacks.group]]\nid = \"a\"\n", "x/y.log")
	f.Add("[build]\ninclude = [\"[\"]\n", "[")
	f.Add("[_]\nschema-version = \"0.2\"\n[[io.buildpacks.env.build]]\nname = \"A\"\nvalue = \"1\"\n", "a")
	f.Fuzz(func(t *testing.T, text, rel string) {
		var pt projectTOML
		if parseProject([]byte(text), &pt) != nil {
			return
		}
		pt.buildpacks()
		pt.env()
		s := pt.section()
		matchAny(s.Include, rel)
		matchAny(s.Exclude, rel)
	})
}

func TestHighestVersion(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"0.9.0", "0.10.0", "0.2.1", "latest"} {
		os.Mkdir(filepath.Join(dir, v), 0o755)
	}
	ents, _ := os.ReadDir(dir)
	if got := highestVersion(ents); got != "0.10.0" {
		t.Fatalf("highest of 0.9.0, 0.10.0, 0.2.1, latest: %s", got)
	}
}
