package skifftest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// SchedulerFixture is a scheduler under test over fresh state, as
// TestScheduler's open function returns it; the function also arranges
// that whatever runs is stopped when the test ends.
type SchedulerFixture struct {
	Scheduler skiff.Scheduler
	// Image runs the probe's command language (see the package doc) for
	// a spec's Command and a run's Args; without a Command it serves.
	Image string
	// Restart closes Scheduler as a stopping daemon does (instances keep
	// running), waits down, and returns a new Scheduler over the same
	// state, which the test uses from then on (and cleans up after).
	Restart func(down time.Duration) skiff.Scheduler
	// Volume makes a volume the scheduler can mount and returns its id;
	// nil for a scheduler that provides no volumes (it must refuse every
	// mount).
	Volume func() string
}

// TestScheduler is the conformance suite of skiff.Scheduler: every
// implementation runs it, so that they all keep the contract the
// interface's doc states, and the in-memory one cannot drift from the
// real ones. Restart backoffs of the scheduler under test should be short
// (100 ms to 1 s).
func TestScheduler(t *testing.T, open func(t *testing.T) *SchedulerFixture) {
	tests := []struct {
		name string
		fn   func(t *testing.T, fx *SchedulerFixture)
	}{
		{"ServeReadyStop", testServeReadyStop},
		{"CrashRestarts", testCrashRestarts},
		{"NeverReady", testNeverReady},
		{"GraceThenKill", testGraceThenKill},
		{"InvalidSpecs", testInvalidSpecs},
		{"AttachedRun", testAttachedRun},
		{"ReleaseTaskKeepsItsName", testReleaseTaskKeepsItsName},
		{"OneOff", testOneOff},
		{"Mounts", testMounts},
		{"OneOffEndsWhileDown", testOneOffEndsWhileDown},
		{"DaemonRestart", testDaemonRestart},
		{"AppsApart", testAppsApart},
		{"Logs", testLogs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func testSpec(fx *SchedulerFixture, app, processType string, index int, cmd ...string) *skiff.InstanceSpec {
	return &skiff.InstanceSpec{AppID: app + "-id", AppName: app, Release: 3, Image: fx.Image, ProcessType: processType, Index: index,
		Command: cmd, Env: map[string]string{"GREETING": "a=b\nc"}, Limits: skiff.Limits{MemoryBytes: 64 << 20, CPU: 0.5, Pids: 64}}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func find(t *testing.T, s skiff.Scheduler, appID, id string) *skiff.Instance {
	t.Helper()
	list, err := s.Instances(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func mustStart(t *testing.T, s skiff.Scheduler, spec *skiff.InstanceSpec) *skiff.Instance {
	t.Helper()
	in, err := s.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start %s: %v", spec.Name(), err)
	}
	if in.ID == "" || in.Spec.Name() != spec.Name() || in.Spec.AppID != spec.AppID || in.Spec.Release != spec.Release {
		t.Fatalf("Start returned %+v for %s", in, spec.Name())
	}
	return in
}

func mustReady(t *testing.T, s skiff.Scheduler, in *skiff.Instance) *skiff.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, in.ID); err != nil {
		t.Fatalf("%s not ready: %v", in.Spec.Name(), err)
	}
	up := find(t, s, in.Spec.AppID, in.ID)
	if up == nil || up.State != skiff.InstanceUp || up.Addr == "" {
		t.Fatalf("ready instance listed as %+v", up)
	}
	return up
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}

func logsOf(t *testing.T, s skiff.Scheduler, q skiff.LogQuery) string {
	t.Helper()
	if q.Lines == 0 {
		q.Lines = 10000
	}
	var sb strings.Builder
	if err := s.Logs(context.Background(), q, func(l skiff.LogLine) error {
		fmt.Fprintf(&sb, "%s[%s]: %s\n", l.Source, l.Process, l.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func wantLines(t *testing.T, logs string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(logs, w) {
			t.Errorf("the log lacks %q:\n%s", w, logs)
		}
	}
}

// A web instance serves at Addr with the spec's environment and the
// platform's variables; Stop ends it and removes it, and is idempotent.
func testServeReadyStop(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	in := mustStart(t, s, testSpec(fx, "shop", "web", 1))
	up := mustReady(t, s, in)
	if body := httpGet(t, "http://"+up.Addr+"/"); body != "hello from web.1\n" {
		t.Fatalf("GET / answered %q", body)
	}
	env := httpGet(t, "http://"+up.Addr+"/env")
	wantLines(t, env, `"GREETING=a=b\nc"`, `"PORT=5000"`, `"DYNO=web.1"`, `"SKIFF_PROCESS=web.1"`, `"SKIFF_RELEASE=v3"`)
	if up.Restarts != 0 || up.StartedAt.IsZero() || up.CreatedAt.IsZero() || up.Spec.Env["GREETING"] != "a=b\nc" {
		t.Errorf("listed as %+v", up)
	}
	if err := s.Stop(context.Background(), in.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := find(t, s, "shop-id", in.ID); got != nil {
		t.Fatalf("still listed after Stop: %+v", got)
	}
	if err := s.Stop(context.Background(), in.ID, 0); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
	wantLines(t, logsOf(t, s, skiff.LogQuery{AppID: "shop-id", Process: "web"}),
		"app[web.1]: listening on 5000", "skiff[web.1]: State changed from starting to up",
		"skiff[web.1]: Stopping process with SIGTERM", "skiff[web.1]: Process exited with status 143")
}

// A process that exits is restarted with a backoff; ps sees the crash.
func testCrashRestarts(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	in := mustStart(t, s, testSpec(fx, "crashy", "web", 1, "exit", "3"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, in.ID); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("WaitReady of a crashing instance: %v (code %q)", err, skiff.ErrorCode(err))
	} else if msg := skiff.ErrorMessage(err); !strings.HasPrefix(msg, in.Spec.Name()+" ") {
		t.Errorf("WaitReady's error does not begin with the instance's name %q: %q", in.Spec.Name(), msg)
	}
	waitFor(t, "two restarts", 20*time.Second, func() bool {
		got := find(t, s, "crashy-id", in.ID)
		return got != nil && got.Restarts >= 2 && got.LastExit == "exited with status 3" && !got.LastExitAt.IsZero()
	})
	if got := find(t, s, "crashy-id", in.ID); got.State != skiff.InstanceCrashed && got.State != skiff.InstanceUp {
		t.Errorf("a crash-looping instance is %s", got.State)
	}
	if err := s.Stop(context.Background(), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if find(t, s, "crashy-id", in.ID) != nil {
		t.Fatal("still listed after Stop")
	}
	wantLines(t, logsOf(t, s, skiff.LogQuery{AppID: "crashy-id"}),
		"app[web.1]: exiting 3", "skiff[web.1]: Process exited with status 3", "skiff[web.1]: State changed from up to crashed",
		"skiff[web.1]: Starting process")
}

// An instance that never listens is not ready; WaitReady ends with ctx,
// and unknown ids are ENOTFOUND.
func testNeverReady(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	in := mustStart(t, s, testSpec(fx, "mute", "web", 1, "sleep", "1h"))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.WaitReady(ctx, in.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady of an instance that never listens: %v", err)
	}
	if err := s.WaitReady(context.Background(), "no-such-instance"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("WaitReady of an unknown id: %v", err)
	}
	if err := s.Stop(context.Background(), "no-such-instance", 0); err != nil {
		t.Fatalf("Stop of an unknown id: %v", err)
	}
	if err := s.Stop(context.Background(), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
}

// A process that ignores SIGTERM is killed after the grace.
func testGraceThenKill(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	in := mustStart(t, s, testSpec(fx, "stubborn", "worker", 1, "ignore-term"))
	waitFor(t, "the process to run", 20*time.Second, func() bool {
		return strings.Contains(logsOf(t, s, skiff.LogQuery{AppID: "stubborn-id"}), "ignoring SIGTERM")
	})
	start := time.Now()
	if err := s.Stop(context.Background(), in.ID, 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 15*time.Second {
		t.Fatalf("Stop with a grace of 700ms took %v", d)
	}
	if find(t, s, "stubborn-id", in.ID) != nil {
		t.Fatal("still listed after Stop")
	}
}

// Specs that cannot run are EINVALID, and leave nothing behind; so is a
// mount the scheduler cannot provide.
func testInvalidSpecs(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	bad := []*skiff.InstanceSpec{testSpec(fx, "odd", "Web!", 1), testSpec(fx, "odd", "web", 0)}
	withMount := testSpec(fx, "odd", "web", 1)
	withMount.Mounts = []skiff.Mount{{Volume: "data", Path: "/data"}}
	for _, spec := range append(bad, withMount) {
		if _, err := s.Start(context.Background(), spec); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("Start of %s (mounts %v): %v", spec.Name(), spec.Mounts, err)
		}
	}
	if code, err := s.Run(context.Background(), &skiff.RunRequest{Spec: *withMount, Args: []string{"exit", "0"}}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("Run with a mount: %d %v", code, err)
	}
	if _, err := s.Run(context.Background(), &skiff.RunRequest{Spec: *testSpec(fx, "odd", "run", 0)}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("Run without a command: %v", err)
	}
	if list, _ := s.Instances(context.Background(), ""); len(list) != 0 {
		t.Fatalf("invalid specs left %+v", list)
	}
}

// Run is attached: its streams, its exit code, its log lines; cancelling
// it kills the process; nothing of it stays listed.
func testAttachedRun(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	spec := testSpec(fx, "oneoff", "run", 0)
	var out, errOut strings.Builder
	code, err := s.Run(context.Background(), &skiff.RunRequest{Spec: *spec, Args: []string{"exit", "7"}, Stdout: &out, Stderr: &errOut})
	if err != nil || code != 7 || !strings.Contains(out.String(), "exiting 7") {
		t.Fatalf("run exit 7: %d %v %q", code, err, out.String())
	}
	out.Reset()
	code, err = s.Run(context.Background(), &skiff.RunRequest{Spec: *spec, Args: []string{"stdin"},
		Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 || out.String() != "hello\nworld\n" {
		t.Fatalf("run stdin: %d %v %q %q", code, err, out.String(), errOut.String())
	}
	errOut.Reset()
	if code, err = s.Run(context.Background(), &skiff.RunRequest{Spec: *spec, Args: []string{"no-such-program"}, Stdout: &out, Stderr: &errOut}); err != nil || code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("run of an unknown program: %d %v %q", code, err, errOut.String())
	}
	// Cancelled while it runs (or, on a slow machine, while it starts):
	// either way it ends at once, and not as a success.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if code, err = s.Run(ctx, &skiff.RunRequest{Spec: *spec, Args: []string{"sleep", "1h"}}); (err == nil && code == 0) || time.Since(start) > 15*time.Second {
		t.Fatalf("a cancelled run: %d %v after %v", code, err, time.Since(start))
	}
	logs := logsOf(t, s, skiff.LogQuery{AppID: "oneoff-id", Process: "run"})
	if !regexp.MustCompile("skiff\\[run\\.\\d+\\]: Starting process with command `exit 7`").MatchString(logs) ||
		!regexp.MustCompile(`skiff\[run\.\d+\]: Process exited with status 7`).MatchString(logs) {
		t.Fatalf("the runs are not logged:\n%s", logs)
	}
	if list, _ := s.Instances(context.Background(), ""); len(list) != 0 {
		t.Fatalf("runs left %+v", list)
	}
}

// A release phase's task (RunRequest's NamedOneOff) is logged under its
// own name, release.<version>, never as a one-off run.
func testReleaseTaskKeepsItsName(t *testing.T, fx *SchedulerFixture) {
	spec := testSpec(fx, "phase", skiff.OneOffRelease, 7)
	var out strings.Builder
	if code, err := fx.Scheduler.Run(context.Background(), &skiff.RunRequest{Spec: *spec, Args: []string{"exit", "0"}, Stdout: &out, Stderr: &out}); code != 0 || err != nil {
		t.Fatalf("the release task: %d %v %q", code, err, out.String())
	}
	logs := logsOf(t, fx.Scheduler, skiff.LogQuery{AppID: "phase-id"})
	for _, want := range []string{"skiff[release.7]: Starting process with command `exit 0`", "skiff[release.7]: Process exited with status 0"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "[run.") {
		t.Errorf("the release task is logged as a one-off run:\n%s", logs)
	}
	if list, _ := fx.Scheduler.Instances(context.Background(), "phase-id"); len(list) != 0 {
		t.Fatalf("the task left %+v", list)
	}
}

// A OneOff instance runs once: it is not restarted, and stays listed with
// its exit code until Stop.
func testOneOff(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	spec := testSpec(fx, "batch", "run", 1, "exit", "4")
	spec.OneOff = true
	in := mustStart(t, s, spec)
	waitFor(t, "the one-off to exit", 20*time.Second, func() bool {
		got := find(t, s, "batch-id", in.ID)
		return got != nil && got.State == skiff.InstanceExited
	})
	time.Sleep(1500 * time.Millisecond) // longer than a restart backoff
	got := find(t, s, "batch-id", in.ID)
	if got == nil || got.State != skiff.InstanceExited || got.ExitCode != 4 || got.Restarts != 0 || got.LastExit != "exited with status 4" || !got.Spec.OneOff {
		t.Fatalf("an exited one-off is listed as %+v", got)
	}
	if err := s.WaitReady(context.Background(), in.ID); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("WaitReady of an exited one-off: %v", err)
	}
	wantLines(t, logsOf(t, s, skiff.LogQuery{AppID: "batch-id"}), "app[run.1]: exiting 4", "skiff[run.1]: State changed from up to exited")
	if err := s.Stop(context.Background(), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if find(t, s, "batch-id", in.ID) != nil {
		t.Fatal("still listed after Stop")
	}
}

// Instances outlive the scheduler: a new one lists them with the same
// ids, addresses and counts, keeps supervising them, and counts a process
// that ended while nobody watched as a crash. Logs survive.
func testDaemonRestart(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	web := mustReady(t, s, mustStart(t, s, testSpec(fx, "durable", "web", 1)))
	brief := mustStart(t, s, testSpec(fx, "durable", "worker", 1, "sleep", "1s"))
	oneOffSpec := testSpec(fx, "durable", "run", 1, "exit", "5")
	oneOffSpec.OneOff = true
	oneOff := mustStart(t, s, oneOffSpec)
	waitFor(t, "the one-off to exit", 20*time.Second, func() bool {
		got := find(t, s, "durable-id", oneOff.ID)
		return got != nil && got.State == skiff.InstanceExited
	})
	s = fx.Restart(2 * time.Second) // brief ends meanwhile
	if body := httpGet(t, "http://"+web.Addr+"/"); body != "hello from web.1\n" {
		t.Fatalf("the instance did not survive: %q", body)
	}
	got := mustReady(t, s, web)
	if got.ID != web.ID || got.Addr != web.Addr || got.Restarts != 0 || got.Spec.Name() != "web.1" {
		t.Fatalf("re-adopted as %+v, was %+v", got, web)
	}
	if d := got.StartedAt.Sub(web.StartedAt); d < -time.Second || d > time.Second {
		t.Errorf("re-adopted instance started at %v, was %v", got.StartedAt, web.StartedAt)
	}
	waitFor(t, "the worker that ended meanwhile to count a crash", 20*time.Second, func() bool {
		b := find(t, s, "durable-id", brief.ID)
		return b != nil && b.Restarts >= 1 && b.LastExit != ""
	})
	if o := find(t, s, "durable-id", oneOff.ID); o == nil || o.State != skiff.InstanceExited || o.ExitCode != 5 || o.Restarts != 0 {
		t.Fatalf("the exited one-off after the restart: %+v", o)
	}
	if list, _ := s.Instances(context.Background(), "durable-id"); len(list) != 3 {
		t.Fatalf("after the restart: %d instances, want 3 (no second copies)", len(list))
	}
	for _, id := range []string{web.ID, brief.ID, oneOff.ID} {
		if err := s.Stop(context.Background(), id, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	wantLines(t, logsOf(t, s, skiff.LogQuery{AppID: "durable-id"}), "app[web.1]: listening on 5000", "app[run.1]: exiting 5")
}

// Listing is per app and sorted; concurrent starts are safe; RemoveApp
// removes one app's instances and logs, and nothing of another app.
func testAppsApart(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	specs := []*skiff.InstanceSpec{
		testSpec(fx, "alpha", "worker", 1, "sleep", "1h"), testSpec(fx, "alpha", "web", 2),
		testSpec(fx, "alpha", "web", 1), testSpec(fx, "beta", "web", 1),
	}
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Start(context.Background(), spec)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	names := func(appID string) string {
		list, err := s.Instances(context.Background(), appID)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, in := range list {
			n = append(n, in.Spec.AppName+":"+in.Spec.Name())
		}
		return strings.Join(n, " ")
	}
	if got := names("alpha-id"); got != "alpha:web.1 alpha:web.2 alpha:worker.1" {
		t.Fatalf("alpha lists %s", got)
	}
	if got := names(""); got != "alpha:web.1 alpha:web.2 alpha:worker.1 beta:web.1" {
		t.Fatalf("all list %s", got)
	}
	s.AppLog("alpha-id", "", "alpha's line")
	s.AppLog("beta-id", "", "beta's line")
	if err := s.RemoveApp(context.Background(), "alpha-id"); err != nil {
		t.Fatal(err)
	}
	if got := names(""); got != "beta:web.1" {
		t.Fatalf("after RemoveApp(alpha): %s", got)
	}
	if l := logsOf(t, s, skiff.LogQuery{AppID: "alpha-id"}); l != "" {
		t.Fatalf("alpha's log after RemoveApp:\n%s", l)
	}
	wantLines(t, logsOf(t, s, skiff.LogQuery{AppID: "beta-id"}), "skiff[]: beta's line")
	if err := s.RemoveApp(context.Background(), "alpha-id"); err != nil {
		t.Fatalf("a second RemoveApp: %v", err)
	}
	if err := s.RemoveApp(context.Background(), "beta-id"); err != nil {
		t.Fatal(err)
	}
}

// Logs: platform lines split per line, the process filter, the last N
// lines, and Follow until ctx ends.
func testLogs(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	s.AppLog("chatty-id", "", "Scaled to web=2\nby alice")
	s.AppLog("chatty-id", "web.1", "web's line")
	s.AppLog("chatty-id", "web.10", "another web's line")
	s.AppLog("chatty-id", "worker.1", "worker's line")
	if got := logsOf(t, s, skiff.LogQuery{AppID: "chatty-id", Process: "web"}); got != "skiff[web.1]: web's line\nskiff[web.10]: another web's line\n" {
		t.Fatalf("process web:\n%s", got)
	}
	if got := logsOf(t, s, skiff.LogQuery{AppID: "chatty-id", Process: "web.1"}); got != "skiff[web.1]: web's line\n" {
		t.Fatalf("process web.1:\n%s", got)
	}
	if got := logsOf(t, s, skiff.LogQuery{AppID: "chatty-id", Lines: 2}); got != "skiff[web.10]: another web's line\nskiff[worker.1]: worker's line\n" {
		t.Fatalf("the last 2 lines:\n%s", got)
	}
	if got := logsOf(t, s, skiff.LogQuery{AppID: "chatty-id", Lines: 1}); got != "skiff[worker.1]: worker's line\n" {
		t.Fatalf("the last line:\n%s", got)
	}
	if got := logsOf(t, s, skiff.LogQuery{AppID: "chatty-id", Since: time.Now().Add(time.Hour)}); got != "" {
		t.Fatalf("lines from the future:\n%s", got)
	}
	if got := logsOf(t, s, skiff.LogQuery{AppID: "chatty-id"}); !strings.HasPrefix(got, "skiff[]: Scaled to web=2\nskiff[]: by alice\n") {
		t.Fatalf("a two-line platform message:\n%s", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.Logs(ctx, skiff.LogQuery{AppID: "chatty-id", Process: "worker", Lines: 1, Follow: true}, func(l skiff.LogLine) error {
			lines <- l.Text
			return nil
		})
	}()
	if l := <-lines; l != "worker's line" {
		t.Fatalf("follow began with %q", l)
	}
	waitFor(t, "a followed line", 10*time.Second, func() bool {
		s.AppLog("chatty-id", "web.1", "not followed")
		s.AppLog("chatty-id", "worker.1", "followed")
		select {
		case l := <-lines:
			if l != "followed" {
				t.Fatalf("follow delivered %q", l)
			}
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Logs with Follow ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Logs with Follow did not end with its context")
	}
}

// A spec that mounts a volume the scheduler has runs, with the mount in
// its listed spec, for instances and runs alike; one naming a volume it
// does not have is EINVALID and leaves nothing. A scheduler without
// volumes refuses every mount so, and never runs the process without it.
func testMounts(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	ctx := context.Background()
	if fx.Volume == nil {
		spec := testSpec(fx, "mounts", "web", 1)
		spec.Mounts = []skiff.Mount{{Volume: "vol-0000000000000001", Path: "/data"}}
		if _, err := s.Start(ctx, spec); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Fatalf("Start with a mount, on a scheduler without volumes: %v", err)
		}
		run := testSpec(fx, "mounts", "run", 0)
		run.Mounts = spec.Mounts
		if _, err := s.Run(ctx, &skiff.RunRequest{Spec: *run, Args: []string{"exit", "0"}}); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Fatalf("Run with a mount, on a scheduler without volumes: %v", err)
		}
		if got, _ := s.Instances(ctx, "mounts-id"); len(got) != 0 {
			t.Fatalf("a refused mount left instances %+v", got)
		}
		return
	}
	vol := fx.Volume()
	spec := testSpec(fx, "mounts", "web", 1)
	spec.Mounts = []skiff.Mount{{Volume: vol, Path: "/data"}}
	in, err := s.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start with a mount: %v", err)
	}
	defer func() { _ = s.Stop(ctx, in.ID, time.Second) }() // the fixture stops what is left
	if got := find(t, s, "mounts-id", in.ID); got == nil || len(got.Spec.Mounts) != 1 || got.Spec.Mounts[0] != spec.Mounts[0] {
		t.Fatalf("listed %+v", got)
	}
	run := testSpec(fx, "mounts", "run", 0)
	run.Mounts = spec.Mounts
	if code, err := s.Run(ctx, &skiff.RunRequest{Spec: *run, Args: []string{"exit", "0"}}); code != 0 || err != nil {
		t.Fatalf("Run with a mount: %d %v", code, err)
	}
	bad := testSpec(fx, "mounts", "worker", 1)
	bad.Mounts = []skiff.Mount{{Volume: "vol-00000000000000ff", Path: "/data"}}
	if _, err := s.Start(ctx, bad); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("Start with a missing volume: %v", err)
	}
	if got, _ := s.Instances(ctx, "mounts-id"); len(got) != 1 {
		t.Fatalf("instances %+v", got)
	}
}

// A OneOff instance whose process ends while no scheduler runs is listed,
// by the next one, as exited with its own status: never run again (a cron
// run must not happen twice), never taken for a crash.
func testOneOffEndsWhileDown(t *testing.T, fx *SchedulerFixture) {
	s := fx.Scheduler
	spec := testSpec(fx, "nightly", "cron", 7, "sleep", "1500ms")
	spec.OneOff = true
	in := mustStart(t, s, spec)
	waitFor(t, "the one-off to run", 20*time.Second, func() bool {
		got := find(t, s, "nightly-id", in.ID)
		return got != nil && got.State == skiff.InstanceUp
	})
	// Its first line is in the log before the scheduler goes down, so that
	// the count below tells whether it ran again, not whether a line
	// written as the daemon stopped was kept (CI once saw it lost).
	waitFor(t, "the one-off's first line", 20*time.Second, func() bool {
		return strings.Contains(logsOf(t, s, skiff.LogQuery{AppID: "nightly-id"}), "app[cron.7]: sleeping")
	})
	s = fx.Restart(3 * time.Second) // it ends meanwhile
	waitFor(t, "the one-off to be listed as exited", 20*time.Second, func() bool {
		got := find(t, s, "nightly-id", in.ID)
		return got != nil && got.State == skiff.InstanceExited
	})
	time.Sleep(1500 * time.Millisecond) // longer than a restart backoff
	got := find(t, s, "nightly-id", in.ID)
	if got == nil || got.State != skiff.InstanceExited || got.ExitCode != 0 || got.Restarts != 0 {
		t.Fatalf("a one-off that ended while the scheduler was down: %+v", got)
	}
	if logs := logsOf(t, s, skiff.LogQuery{AppID: "nightly-id"}); strings.Count(logs, "app[cron.7]: sleeping") != 1 {
		t.Fatalf("it did not run exactly once:\n%s", logs)
	}
	if err := s.Stop(context.Background(), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
}
