package buildpacks

import (
	"strings"
	"testing"
)

// Apps in languages the builder has no buildpack for fail at once, naming
// the language and the way forward, instead of building as a static site,
// a Node.js app or a Procfile app that then crashes at start.
func TestUnsupportedLanguages(t *testing.T) {
	for app, lang := range map[string]string{"pushed/ruby": "Ruby", "pushed/php": "PHP", "pushed/java": "Java"} {
		t.Run(lang, func(t *testing.T) {
			p := newPlatform(t, app)
			if p.build() {
				t.Fatalf("the build of a %s app succeeded:\n%s", lang, p.out.String())
			}
			out := p.out.String()
			for _, want := range []string{
				"-----> " + lang + " app detected",
				" !     This builder has no " + lang + ":",
				"builder:set <app> heroku/builder:24",
				"buildpacks:set <app> skiff/procfile",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if ids := p.groupIDs(); len(ids) != 1 || ids[0] != "skiff/unsupported" {
				t.Errorf("group %v", ids)
			}
		})
	}
}
