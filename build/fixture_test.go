package build

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/skiffhq/skiff"
)

// synthFixture builds an app with the synthetic builder on a test
// platform (as root).
type synthFixture struct {
	t       *testing.T
	p       *Platform
	builder string
	app     *skiff.App
	n       int
}

func newSynthFixture(t *testing.T, appID string) *synthFixture {
	requireRoot(t)
	p := newTestPlatform(t, Config{})
	return &synthFixture{t: t, p: p, builder: synthBuilder(t, p), app: &skiff.App{ID: appID, Name: appID}}
}

// start builds synth.txt = mode as build id, with the previous image prev,
// its output to out; it returns as Build does, before the build settles.
func (f *synthFixture) start(id, mode, prev string, out io.Writer) (*skiff.BuildResult, error) {
	f.t.Helper()
	return f.p.Build(context.Background(), &skiff.BuildRequest{App: f.app, BuildID: id, Builder: f.builder,
		Source: tarOf(f.t, map[string]string{"synth.txt": mode + "\n"}), PreviousImage: prev}, out)
}

// build builds synth.txt = mode with the previous image prev and waits
// for it to settle; it returns the result (nil on failure) and the output.
func (f *synthFixture) build(mode, prev string) (*skiff.BuildResult, string) {
	f.t.Helper()
	f.n++
	var out bytes.Buffer
	res, err := f.start(f.app.ID+"-"+string(rune('a'+f.n)), mode, prev, &out)
	f.p.settles.Wait() // the cache is kept once the build has settled
	if err != nil {
		return nil, out.String() + "\n" + err.Error()
	}
	return res, out.String()
}

func (f *synthFixture) mustBuild(mode, prev string) (*skiff.BuildResult, string) {
	f.t.Helper()
	res, out := f.build(mode, prev)
	if res == nil {
		f.t.Fatalf("build %q failed:\n%s", mode, out)
	}
	return res, out
}
