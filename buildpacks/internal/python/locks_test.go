package python

import (
	"strings"
	"testing"
)

func names(pkgs []Locked) string {
	text, _ := LockedRequirements(pkgs)
	return text
}

func TestParsePipfileLock(t *testing.T) {
	pkgs, err := ParsePipfileLock([]byte(`{"_meta": {}, "default": {
		"flask": {"hashes": ["sha256:aa", "sha256:bb"], "version": "==3.1.0"},
		"colorama": {"hashes": ["sha256:cc"], "markers": "platform_system == 'Windows'", "version": "==0.4.6"}},
		"develop": {"pytest": {"hashes": ["sha256:dd"], "version": "==8.0.0"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "colorama==0.4.6 ; platform_system == 'Windows' --hash=sha256:cc\nflask==3.1.0 --hash=sha256:aa --hash=sha256:bb\n"
	if got := names(pkgs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for in, want := range map[string]string{
		`{"default": {"x": {"version": "*"}}}`:     "not a pinned version",
		`{"default": {"x": {"path": "."}}}`:        "from the path .",
		`{"default": {"x y": {"version": "==1"}}}`: "names a package",
		`[`: "not valid JSON",
		`{"default": {"x": {"version": "==1", "markers": "a\n--index-url http://evil"}}}`: "invalid marker",
		`{"default": {"x": {"version": "==1 --hash=x"}}}`:                                 "invalid version",
	} {
		if _, err := ParsePipfileLock([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	git, _ := ParsePipfileLock([]byte(`{"default": {"lib": {"git": "https://example.com/lib.git", "ref": "abc"}}}`))
	if text, hashes := LockedRequirements(git); text != "lib @ git+https://example.com/lib.git@abc\n" || hashes {
		t.Errorf("git: %q %v", text, hashes)
	}
}

// Locks without groups are walked from the main dependencies, with the
// markers of the edges on the way; dev-only packages stay out.
func TestParsePoetryLock(t *testing.T) {
	lock := `
[[package]]
name = "flask"
version = "3.1.0"
files = [{file = "flask.whl", hash = "sha256:f"}]
[package.dependencies]
click = ">=8"
importlib-metadata = {version = ">=3.6", markers = "python_version < \"3.10\""}

[[package]]
name = "click"
version = "8.1.8"
files = [{file = "click.whl", hash = "sha256:c"}]
[package.dependencies]
colorama = {version = "*", markers = "platform_system == \"Windows\""}

[[package]]
name = "colorama"
version = "0.4.6"
files = [{file = "colorama.whl", hash = "sha256:ee"}]

[[package]]
name = "importlib-metadata"
version = "8.0.0"
files = [{file = "im.whl", hash = "sha256:1a"}]

[[package]]
name = "pytest"
version = "8.0.0"
files = [{file = "pytest.whl", hash = "sha256:0e"}]
[package.dependencies]
colorama = {version = "*", markers = "sys_platform == \"win32\""}

[metadata]
lock-version = "2.0"
`
	pkgs, err := ParsePoetryLock([]byte(lock), []string{"flask"})
	if err != nil {
		t.Fatal(err)
	}
	want := "click==8.1.8 --hash=sha256:c\n" +
		"colorama==0.4.6 ; platform_system == \"Windows\" --hash=sha256:ee\n" +
		"flask==3.1.0 --hash=sha256:f\n" +
		"importlib-metadata==8.0.0 ; python_version < \"3.10\" --hash=sha256:1a\n"
	if got := names(pkgs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Poetry 2's groups say it directly.
	pkgs, err = ParsePoetryLock([]byte(`
[[package]]
name = "flask"
version = "3.1.0"
groups = ["main"]
files = [{file = "flask.whl", hash = "sha256:f"}]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["dev"]
files = []

[[package]]
name = "colorama"
version = "0.4.6"
groups = ["main", "dev"]
markers = {main = "platform_system == \"Windows\"", dev = "sys_platform == \"win32\""}
files = [{file = "c.whl", hash = "sha256:ee"}]

[metadata]
lock-version = "2.1"
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(pkgs); got != "colorama==0.4.6 ; platform_system == \"Windows\" --hash=sha256:ee\nflask==3.1.0 --hash=sha256:f\n" {
		t.Errorf("2.1: %q", got)
	}
}

func TestParseUVLock(t *testing.T) {
	lock := `
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "flask", extra = ["async"] }]
[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "flask"
version = "3.1.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "click" }]
wheels = [{ url = "https://x/flask.whl", hash = "sha256:f", size = 1 }]
[package.optional-dependencies]
async = [{ name = "asgiref" }]
dotenv = [{ name = "python-dotenv" }]

[[package]]
name = "click"
version = "8.1.8"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "colorama", marker = "platform_system == 'Windows'" }]
sdist = { url = "https://x/click.tar.gz", hash = "sha256:c5", size = 1 }
wheels = [{ url = "https://x/click.whl", hash = "sha256:c", size = 1 }]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/colorama.whl", hash = "sha256:ee", size = 1 }]

[[package]]
name = "asgiref"
version = "3.8.1"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/asgiref.whl", hash = "sha256:a", size = 1 }]

[[package]]
name = "python-dotenv"
version = "1.0.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/dotenv.whl", hash = "sha256:d", size = 1 }]

[[package]]
name = "pytest"
version = "8.0.0"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://x/pytest.whl", hash = "sha256:0e", size = 1 }]
`
	pkgs, err := ParseUVLock([]byte(lock))
	if err != nil {
		t.Fatal(err)
	}
	want := "asgiref==3.8.1 --hash=sha256:a\n" +
		"click==8.1.8 --hash=sha256:c5 --hash=sha256:c\n" +
		"colorama==0.4.6 ; platform_system == 'Windows' --hash=sha256:ee\n" +
		"flask==3.1.0 --hash=sha256:f\n"
	if got := names(pkgs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := ParseUVLock([]byte("version = 2\n")); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("version 2: %v", err)
	}
	if _, err := ParseUVLock([]byte("version = 1\n")); err == nil || !strings.Contains(err.Error(), "no project of the app's own") {
		t.Errorf("no root: %v", err)
	}
}

// FuzzParseLocks: lock files are untrusted input; any parses or fails
// cleanly, and what parses renders as requirement lines.
func FuzzParseLocks(f *testing.F) {
	f.Add([]byte(`{"default": {"flask": {"version": "==1", "hashes": ["sha256:a"]}}}`), 0)
	f.Add([]byte("[[package]]\nname = \"a\"\nversion = \"1\"\n[package.dependencies]\nb = {markers = \"x\"}\n[[package]]\nname = \"b\"\nversion = \"2\"\n[metadata]\nlock-version = \"2.0\"\n"), 1)
	f.Add([]byte("version = 1\n[[package]]\nname = \"r\"\nversion = \"0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"r\" }]\n"), 2)
	f.Fuzz(func(t *testing.T, data []byte, kind int) {
		var pkgs []Locked
		var err error
		switch kind % 3 {
		case 0:
			pkgs, err = ParsePipfileLock(data)
		case 1:
			pkgs, err = ParsePoetryLock(data, []string{"a"})
		default:
			pkgs, err = ParseUVLock(data)
		}
		if err != nil {
			return
		}
		text, _ := LockedRequirements(pkgs)
		if strings.Count(text, "\n") != len(pkgs) {
			t.Fatalf("%d packages rendered as %q", len(pkgs), text)
		}
	})
}
