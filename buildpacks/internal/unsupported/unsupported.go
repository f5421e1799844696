// Package unsupported is the buildpack that stops the build of an app in a
// language the default builder has no buildpack for (Ruby, PHP, Java …),
// which would otherwise be taken for a static site, a Node.js app or a bare
// Procfile app, "build", and then crash at start with `bundle: command not
// found`. It runs first in the order; its detect passes on the language's
// marker files and its build fails with the way forward.
package unsupported

import (
	"os"
	"path/filepath"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Buildpack is the unsupported-language buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/unsupported",
	Name:        "Unsupported language",
	Description: "Fails the build of Ruby, PHP, Java and other apps this builder cannot build, saying what to do",
	Detect:      detect,
	Build:       build,
}

// Language is a language the default builder does not build, and the
// files that mark an app as written in it.
type Language struct {
	Name  string
	Files []string // names at the app's root; a leading "*" matches a suffix
	// Heroku is the buildpack of heroku/builder that builds it.
	Heroku string
}

// Languages are checked in this order; the first with a file present is
// the app's.
var Languages = []Language{
	{"Ruby", []string{"Gemfile"}, "heroku/ruby"},
	{"PHP", []string{"composer.json"}, "heroku/php"},
	{"Java", []string{"pom.xml", "build.gradle", "build.gradle.kts", "gradlew", "mvnw"}, "heroku/java"},
	{"Scala", []string{"build.sbt"}, "heroku/scala"},
	{"Clojure", []string{"project.clj"}, "heroku/clojure"},
	{"Elixir", []string{"mix.exs"}, ""},
	{"Rust", []string{"Cargo.toml"}, ""},
	{".NET", []string{"*.csproj", "*.fsproj", "*.sln"}, "heroku/dotnet"},
}

// Find returns the language of the app in dir and the file that says so,
// or nil.
func Find(dir string) (*Language, string) {
	for i, l := range Languages {
		for _, f := range l.Files {
			if f[0] == '*' {
				m, _ := filepath.Glob(filepath.Join(dir, f))
				for _, p := range m {
					if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
						return &Languages[i], filepath.Base(p)
					}
				}
				continue
			}
			if fi, err := os.Stat(filepath.Join(dir, f)); err == nil && fi.Mode().IsRegular() {
				return &Languages[i], f
			}
		}
	}
	return nil, ""
}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	if l, _ := Find(dc.AppDir); l == nil {
		return nil, nil
	}
	return &cnb.BuildPlan{}, nil
}

func build(bc *cnb.BuildContext) error {
	l, file := Find(bc.AppDir)
	if l == nil {
		return cnb.Failf("no file of a language this buildpack knows; it should not have run")
	}
	bc.Log.Step("%s app detected (%s)", l.Name, file)
	e := cnb.Failf("This builder has no %s: skiff's own buildpacks build Node.js, Go, Python, static sites and Procfile apps.", l.Name)
	if l.Heroku != "" {
		e.Hint("To build it, use a builder that has %s (%s), on a server that reaches its registry: builder:set <app> heroku/builder:24.", l.Name, l.Heroku)
	} else {
		e.Hint("To build it, use a CNB builder that has a %s buildpack, on a server that reaches its registry: builder:set <app> <builder image>.", l.Name)
	}
	e.Hint("If the app is not a %s app (%s is only a tool's), or its Procfile brings its own runtime, pin the buildpacks to use, like buildpacks:set <app> skiff/procfile.", l.Name, file)
	return e
}
