package build

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// buildpacks:set is checked against the builder's labels when the user
// pins, with the same rules a build applies, and the refusal names what the
// builder has.
func TestCheckBuildpacks(t *testing.T) {
	p := newTestPlatform(t, Config{})
	ref := synthBuilder(t, p)
	for _, ok := range [][]string{{"synth/bp"}, {"synth/bp@1.0.0"}} {
		if err := p.CheckBuildpacks(ref, ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for pin, want := range map[string]string{
		"heroku/ruby":             "buildpack heroku/ruby is not in builder skiff/builder:synth (it has synth/bp)",
		"synth/bp@2.0.0":          "buildpack synth/bp has no version 2.0.0 in builder skiff/builder:synth (it has 1.0.0)",
		"docker://example.com/bp": "only buildpacks in the builder can be used",
		"../etc":                  "invalid buildpack id",
	} {
		err := p.CheckBuildpacks(ref, []string{"synth/bp", pin})
		if err == nil || !strings.Contains(skiff.ErrorMessage(err), want) || skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%s: %v, want %q", pin, err, want)
		}
	}
	if err := p.CheckBuildpacks("skiff.local/builder:missing", []string{"synth/bp"}); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Errorf("missing builder: %v", err)
	}
}
