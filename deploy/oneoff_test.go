package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// TestDetachedRunsAreReaped: a detached run that ended stays listed with
// its status for a while, then Watch removes it (and says so in the app's
// log); one still running is never reaped; another app's runs are not
// this app's.
func TestDetachedRunsAreReaped(t *testing.T) {
	f := newPhaseFixture(t)
	f.p.cfg.DetachedReapAfter = 300 * time.Millisecond
	f.image("sha256:1", map[string]string{"web": "serve"})
	if out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}}); err != nil {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	done, err := f.p.RunDetached(f.ctx, f.app, "exit 4")
	if err != nil {
		t.Fatal(err)
	}
	long, err := f.p.RunDetached(f.ctx, f.app, "sleep 1m")
	if err != nil {
		t.Fatal(err)
	}
	state := func() map[string]string {
		runs, err := f.p.DetachedRuns(f.ctx, f.app)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, in := range runs {
			m[in.Spec.Name()] = string(in.State)
		}
		return m
	}
	deadline := time.Now().Add(5 * time.Second)
	for state()[done.Spec.Name()] != string(skiff.InstanceExited) {
		if time.Now().After(deadline) {
			t.Fatalf("the run never ended: %v", state())
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := &skiff.App{Name: "blog"}
	if err := f.db.CreateApp(f.ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.DetachedRun(f.ctx, other, done.Spec.Name()); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("blog finds shop's run: %v", err)
	}
	if err := f.p.StopRun(f.ctx, other, long.ID); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("blog stops shop's run by its id: %v", err)
	}

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go f.p.Watch(ctx, 20*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if _, ok := state()[done.Spec.Name()]; !ok {
		t.Fatalf("a run that ended was reaped at once: %v", state())
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		s := state()
		if _, ok := s[done.Spec.Name()]; !ok {
			if s[long.Spec.Name()] != string(skiff.InstanceUp) {
				t.Fatalf("the running run: %v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an ended run was never reaped: %v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if logs := f.logs(done.Spec.Name()); !strings.Contains(logs, "Detached process removed (exit status 4)") {
		t.Fatalf("the app log:\n%s", logs)
	}
}

// TestDetachedRunsAreCapped: an app runs at most MaxDetachedRuns detached
// runs at once; one that ended makes room.
func TestDetachedRunsAreCapped(t *testing.T) {
	f := newPhaseFixture(t)
	f.image("sha256:1", map[string]string{"web": "serve"})
	if out, err := f.release(&skiff.Release{Image: "sha256:1", ProcessTypes: map[string]string{"web": "serve"}}); err != nil {
		t.Fatalf("v1: %v\n%s", err, out)
	}
	var first *skiff.Instance
	for i := range MaxDetachedRuns {
		in, err := f.p.RunDetached(f.ctx, f.app, "sleep 1m")
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if i == 0 {
			first = in
		}
	}
	_, err := f.p.RunDetached(f.ctx, f.app, "sleep 1m")
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "the most it may have at once") {
		t.Fatalf("run %d: %v", MaxDetachedRuns+1, err)
	}
	if err := f.p.StopRun(f.ctx, f.app, first.Spec.Name()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.RunDetached(f.ctx, f.app, "sleep 1m"); err != nil {
		t.Fatalf("after a run:stop: %v", err)
	}
}
