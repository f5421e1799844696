package python

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

func TestRequirementNames(t *testing.T) {
	got := RequirementNames(`# web
Flask>=3.0
gunicorn[gevent]==22.0 ; python_version >= "3.8"
Django_Rest.Framework
-r base.txt
--index-url https://example.org/simple
-e git+https://example.org/x.git#egg=x
./vendor/pkg
https://example.org/a.whl
numpy \
  ==1.26
`)
	want := []string{"flask", "gunicorn", "django-rest-framework", "numpy"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if hasEntries("# only a comment\n\n   \n") || !hasEntries("# c\n-r base.txt\n") {
		t.Error("hasEntries")
	}
}

func TestParsePyproject(t *testing.T) {
	deps, err := ParsePyproject([]byte("[project]\nname = \"app\"\ndependencies = [\"flask>=3\", \"gunicorn\"]\n"))
	if err != nil || !slices.Equal(deps, []string{"flask>=3", "gunicorn"}) {
		t.Errorf("%v %v", deps, err)
	}
	if deps, err := ParsePyproject([]byte("[tool.black]\nline-length = 100\n")); err != nil || deps != nil {
		t.Errorf("no [project]: %v %v", deps, err)
	}
	for in, want := range map[string]string{
		"[tool.poetry]\nname = \"x\"\n":          "Poetry project",
		"[project\n":                             "not valid TOML",
		"[project]\ndependencies = [\"-e .\"]\n": "not a dependency specifier",
		"[project]\ndependencies = \"flask\"\n":  "not valid TOML",
	} {
		if _, err := ParsePyproject([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

func TestWebProcess(t *testing.T) {
	for _, tc := range []struct {
		files []string
		deps  []string
		want  string
	}{
		{[]string{"app.py"}, nil, "python app.py"},
		{[]string{"main.py"}, nil, "python main.py"},
		{[]string{"app.py"}, []string{"gunicorn"}, "gunicorn app:app"},
		{[]string{"wsgi.py", "app.py"}, []string{"gunicorn"}, "gunicorn wsgi"},
		{[]string{"manage.py", "mysite/wsgi.py"}, []string{"django", "gunicorn"}, "gunicorn mysite.wsgi"},
		{[]string{"Procfile", "app.py"}, []string{"gunicorn"}, ""},
		{[]string{"lib.py"}, nil, ""},
	} {
		dir := t.TempDir()
		for _, f := range tc.files {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
			os.WriteFile(filepath.Join(dir, f), nil, 0o644)
		}
		bc := &cnb.BuildContext{AppDir: dir, Log: cnb.NewLog(&strings.Builder{})}
		got := ""
		if p := webProcess(bc, &deps{names: tc.deps}); p != nil {
			got = strings.Join(p.Command, " ")
		}
		if got != tc.want {
			t.Errorf("%v with %v: %q, want %q", tc.files, tc.deps, got, tc.want)
		}
	}
}

func FuzzRequirements(f *testing.F) {
	f.Add([]byte("flask==3\n-r x\n# c\n"), true)
	f.Add([]byte("[project]\ndependencies = [\"a\", \"b>=1\"]\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, asRequirements bool) {
		if asRequirements {
			for _, n := range RequirementNames(string(data)) {
				if n == "" || n != normalize(n) || strings.HasPrefix(n, "-") {
					t.Fatalf("bad name %q", n)
				}
			}
			return
		}
		deps, err := ParsePyproject(data)
		if err != nil {
			return
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "-") {
				t.Fatalf("an option %q passed as a dependency", d)
			}
		}
	})
}
