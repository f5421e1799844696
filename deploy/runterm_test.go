package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// runRecorder is the in-memory scheduler, keeping each one-off's request.
type runRecorder struct {
	skiff.Scheduler
	runs []skiff.RunRequest
}

func (r *runRecorder) Run(ctx context.Context, req *skiff.RunRequest) (int, error) {
	r.runs = append(r.runs, *req)
	return r.Scheduler.Run(ctx, req)
}

// `ssh -t … run app bash` runs with the client's terminal type as TERM
// (else the shell has TERM=dumb and less, top or vim cannot draw); a TERM
// that is no terminal type's name is not passed, nor one without a
// terminal, and the release's config is left as it was.
func TestRunWithTerminalGetsTheClientsTERM(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve"})
	rel := &skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}, Config: map[string]string{"GREETING": "hi"}}
	if out, err := f.release(rel); err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	rec := &runRecorder{Scheduler: f.p.cfg.Scheduler}
	cfg := f.p.cfg
	cfg.Scheduler = rec
	p := New(cfg)
	for term, want := range map[string]string{"xterm-256color": "xterm-256color", "screen.xterm-256color": "screen.xterm-256color",
		"": "", "xterm\x1b]0;owned\x07": "", "$(reboot)": "", strings.Repeat("x", 65): ""} {
		rec.runs = nil
		req := &skiff.RunRequest{Args: []string{"exit 0"}, TTY: &skiff.TTY{Term: term, Width: 80, Height: 24}}
		if _, err := p.Run(f.ctx, f.app, req); err != nil {
			t.Fatalf("run: %v", err)
		}
		if len(rec.runs) != 1 {
			t.Fatalf("%d runs reached the scheduler", len(rec.runs))
		}
		env := rec.runs[0].Spec.Env
		if got, ok := env["TERM"]; got != want || ok != (want != "") {
			t.Errorf("client TERM %q: the run's TERM %q (set %v), want %q", term, got, ok, want)
		}
		if env["GREETING"] != "hi" {
			t.Errorf("the run lost the config: %v", env)
		}
	}
	rec.runs = nil
	if _, err := p.Run(f.ctx, f.app, &skiff.RunRequest{Args: []string{"exit 0"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.runs[0].Spec.Env["TERM"]; ok {
		t.Errorf("a run without a terminal got TERM: %v", rec.runs[0].Spec.Env)
	}
	cur, err := f.db.CurrentRelease(f.ctx, f.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cur.Config["TERM"]; ok {
		t.Errorf("the release's config got the client's TERM: %v", cur.Config)
	}
}
