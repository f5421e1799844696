package python

import (
	"strings"
	"testing"
)

func TestParseVersionFile(t *testing.T) {
	for in, want := range map[string]string{
		"3.13\n": "3.13",
		"# The Python version to use\n\n3.12.4\n": "3.12.4",
		"  3.11  # trailing comment\n3.10\n":      "3.11",
		"cpython-3.13\n":                          "3.13",
		"cpython@3.12.1\n":                        "3.12.1",
		"python-3.12.1":                           "3.12.1",
		"system\n":                                "system",
		"# only a comment\n":                      "error: names no Python version",
		"3\n":                                     `error: asks for Python "3", which is not a version`,
		"2.7.18\n":                                "error: skiff builds Python 3 apps",
		"pypy3.10\n":                              "error: is not a version",
		strings.Repeat("#", maxVersionFile+1) + "\n": "error: larger than",
	} {
		r, err := ParseVersionFile(".python-version", in)
		got := r.String()
		if r.System {
			got = "system"
		}
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, want) && !(strings.HasPrefix(want, "error:") && strings.Contains(got, strings.TrimPrefix(want, "error: "))) {
			t.Errorf("%.40q: %q, want %q", in, got, want)
		}
	}
}

func TestChooseInterpreter(t *testing.T) {
	builder := Interpreter{Version: "3.11.2", Origin: "the builder's"}
	var warned []string
	warn := func(f string, a ...any) { warned = append(warned, f) }
	for _, tc := range []struct {
		file, want string
	}{
		{"", "3.11.2"},
		{"3.11", "3.11.2"},
		{"3.11.9", "3.11.2"}, // another patch: used, with a warning
		{"3.13", "3.13"},
		{"system", "3.11.2"},
		{"3.12", "error: .python-version asks for Python 3.12, which this builder does not offer: it has Python 3.11 (the builder's) and 3.13 (Debian 13's packages)."},
	} {
		r := Request{Patch: -1}
		if tc.file != "" {
			var err error
			if r, err = ParseVersionFile(".python-version", tc.file); err != nil {
				t.Fatal(err)
			}
		}
		i, err := Choose(r, builder, DebianPythons, warn)
		got := i.Version
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.file, got, tc.want)
		}
	}
	if len(warned) != 1 {
		t.Errorf("warnings %v", warned)
	}
}

func TestPipFailure(t *testing.T) {
	retry := "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -2] Name or service not known')': /simple/flask/\nERROR: Could not find a version that satisfies the requirement flask (from versions: none)\nERROR: No matching distribution found for flask\n"
	for _, tc := range []struct{ out, want string }{
		{retry, "pip could not reach the package index https://pypi.org/simple (Failed to establish a new connection): the build's network, not requirements.txt, is the problem."},
		{"ERROR: Could not find a version that satisfies the requirement nope==1 (from versions: 0.1)\nERROR: No matching distribution found for nope==1\n", "has no release of nope==1 that requirements.txt accepts"},
		{"ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n", "does not match the hash requirements.txt pins"},
		{"  error: subprocess-exited-with-error\n  Building wheel for psycopg2 (pyproject.toml): finished with status 'error'\n  Failed to build psycopg2\n", "pip could not build psycopg2 from source"},
		{"ERROR: Cannot install a and b because these package versions have conflicting dependencies.\nResolutionImpossible\n", "The requirements of requirements.txt conflict"},
		{"something else\n", "pip install failed (exit status 1)"},
	} {
		if got := pipFailure(tc.out, "https://pypi.org/simple", "requirements.txt", 1, nil).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%.60q: %q, want %q", tc.out, got, tc.want)
		}
	}
}
