package nodejs

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

func TestParsePackageJSON(t *testing.T) {
	pj, err := ParsePackageJSON([]byte(`{"engines": {"node": ">=20 <25", "npm": "10.x"}, "scripts": {"start": "node ."}, "dependencies": {"ms": "2"}, "packageManager": "yarn@4.1.0"}`))
	if err != nil {
		t.Fatal(err)
	}
	if pj.NodeRange != ">=20 <25" || pj.NPMRange != "10.x" || pj.Scripts["start"] != "node ." || !pj.HasDeps || pj.PackageManager != "yarn@4.1.0" {
		t.Errorf("%+v", pj)
	}
	for in, want := range map[string]string{
		`{"engines": {"node": 20}}`:        "engines.node must be a string",
		`{"engines": {"node": "lts/*"}}`:   `engines.node: invalid version range "lts/*"`,
		`{"scripts": {"start": ["node"]}}`: "scripts.start must be a string",
		`{"name": "x",}`:                   "not valid JSON",
		`[1, 2]`:                           "not valid JSON",
	} {
		if _, err := ParsePackageJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

// FuzzParsePackageJSON: any input parses or fails cleanly, and an accepted
// engines range is one the resolver can use.
func FuzzParsePackageJSON(f *testing.F) {
	for _, s := range []string{
		`{"engines": {"node": "24.x"}, "scripts": {"build": "tsc", "start": "node dist"}}`,
		`{"engines": {"node": ">= 18.17.0 || ^20", "npm": ">=9"}}`,
		`{"engines": {"node": null}}`,
		`{"dependencies": {"a": "1"}, "devDependencies": {}}`,
		`{}`, `null`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pj, err := ParsePackageJSON(data)
		if err != nil {
			return
		}
		for _, r := range []string{pj.NodeRange, pj.NPMRange} {
			if r == "" {
				continue
			}
			if _, err := semver.ParseRange(r); err != nil {
				t.Fatalf("accepted range %q does not parse: %v", r, err)
			}
		}
	})
}
