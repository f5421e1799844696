package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container/containertest"
)

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func instance(rt interface {
	Instances(context.Context, string) ([]*skiff.Instance, error)
}, id string) *skiff.Instance {
	list, _ := rt.Instances(context.Background(), "")
	for _, in := range list {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func TestCrashLoopBacksOff(t *testing.T) {
	f, rt := newRuntime(t)
	in, err := rt.Start(context.Background(), spec(f, "crashy", "exit", "3"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.WaitReady(ctx, in.ID); err == nil || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("WaitReady of a crashing app: %v", err)
	}
	waitUntil(t, "4 restarts", 15*time.Second, func() bool { return instance(rt, in.ID).Restarts >= 4 })
	got := instance(rt, in.ID)
	if got.LastExit != "exited with status 3" {
		t.Fatalf("last exit %q", got.LastExit)
	}
	// The pause between a crash and the next start is the backoff, and it
	// doubles: 100, 200, 400 ms… (start-up time is left out, so a loaded
	// machine does not blur it).
	var crashed time.Time
	var gaps []time.Duration
	rt.Logs(context.Background(), skiff.LogQuery{AppID: "crashy-id", Lines: 1000}, func(l skiff.LogLine) error {
		switch l.Text {
		case "State changed from up to crashed":
			crashed = l.Time
		case "Starting process with command `exit 3`":
			if !crashed.IsZero() {
				gaps = append(gaps, l.Time.Sub(crashed))
			}
		}
		return nil
	})
	if len(gaps) < 3 {
		t.Fatalf("restarts logged: %v", gaps)
	}
	for i, want := range []time.Duration{100, 200, 400} {
		want *= time.Millisecond
		if gaps[i] < want || gaps[i] > 2*want+200*time.Millisecond {
			t.Fatalf("backoff %d was %v, want about %v (all: %v)", i+1, gaps[i], want, gaps)
		}
	}
}

func TestStopAppIgnoringSIGTERM(t *testing.T) {
	f, rt := newRuntime(t)
	in, err := rt.Start(context.Background(), spec(f, "stubborn", "ignore-term"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "output", 10*time.Second, func() bool {
		return strings.Contains(logText(t, rt, skiff.LogQuery{AppID: "stubborn-id"}), "ignoring SIGTERM")
	})
	t0 := time.Now()
	if err := rt.Stop(context.Background(), in.ID, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 500*time.Millisecond || d > 5*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if !strings.Contains(logText(t, rt, skiff.LogQuery{AppID: "stubborn-id"}), "Process killed by signal 9") {
		t.Fatal("SIGKILL not logged")
	}
}

// TestStopAppWithoutSIGTERMHandler: sleep has no SIGTERM handler; behind
// skiff-init it ends at the SIGTERM, not at the end of the grace period.
func TestStopAppWithoutSIGTERMHandler(t *testing.T) {
	f, rt := newRuntime(t)
	s := spec(f, "sleepy")
	s.Image = busyboxImage(t, f.images, "echo up; exec sleep 3600")
	in, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "output", 10*time.Second, func() bool {
		return strings.Contains(logText(t, rt, skiff.LogQuery{AppID: "sleepy-id"}), "app[web.1]: up")
	})
	time.Sleep(100 * time.Millisecond) // until sh has become sleep
	t0 := time.Now()
	if err := rt.Stop(context.Background(), in.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("stop took %v", d)
	}
	if logs := logText(t, rt, skiff.LogQuery{AppID: "sleepy-id"}); !strings.Contains(logs, "Process exited with status 143") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestOOMShowsInPs(t *testing.T) {
	f, rt := newRuntime(t)
	s := spec(f, "hungry", "oom")
	s.Limits.MemoryBytes = 32 << 20
	in, err := rt.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "an OOM kill", 20*time.Second, func() bool {
		return strings.Contains(instance(rt, in.ID).LastExit, "out of memory")
	})
}

func TestLogFloodIsCapped(t *testing.T) {
	f := newFixture(t)
	f.cfg.LogCap = 1 << 20
	rt := f.open(t)
	t.Cleanup(func() { stopAll(t, rt) })
	const flood = 1 << 30
	in, err := rt.Start(context.Background(), spec(f, "chatty", "spew", "1073741824"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := rt.Start(context.Background(), spec(f, "quiet"))
	if err != nil {
		t.Fatal(err)
	}
	_ = in
	ready(t, rt, other.ID) // the daemon keeps serving others meanwhile
	waitUntil(t, "the flood to end", 120*time.Second, func() bool { return instance(rt, in.ID).Restarts > 0 })
	var total int64
	filepath.Walk(filepath.Join(f.cfg.DataDir, "logs", "apps", "chatty-id"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if total > f.cfg.LogCap || total < f.cfg.LogCap/4 {
		t.Fatalf("log of a %d-byte flood takes %d bytes, cap %d", flood, total, f.cfg.LogCap)
	}
	if !strings.Contains(logText(t, rt, skiff.LogQuery{AppID: "chatty-id"}), "bytes) dropped") {
		t.Fatal("dropped output not reported")
	}
	if !strings.Contains(logText(t, rt, skiff.LogQuery{AppID: "quiet-id"}), "listening on 5000") {
		t.Fatal("the other app's log is missing")
	}
}

func TestRunOneOff(t *testing.T) {
	f, rt := newRuntime(t)
	var out, errOut bytes.Buffer
	code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "oneoff"), Args: []string{"status"}, Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("run: %d %v %s", code, err, errOut.String())
	}
	for _, want := range []string{"Uid: 1000", "CapEff: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "tty: false"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run output lacks %q:\n%s", want, out.String())
		}
	}
	code, err = rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "oneoff"), Args: []string{"exit", "7"}})
	if err != nil || code != 7 {
		t.Fatalf("exit code: %d %v", code, err)
	}
	out.Reset()
	resize := make(chan skiff.WindowSize)
	code, err = rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "oneoff"), Args: []string{"status"}, Stdout: &out,
		TTY: &skiff.TTY{Term: "xterm", Width: 80, Height: 24, Resize: resize}})
	if err != nil || code != 0 || !strings.Contains(out.String(), "tty: true") {
		t.Fatalf("tty run: %d %v %q", code, err, out.String())
	}
	if !regexp.MustCompile(`skiff\[run\.\d+\]: Starting process with command .status.`).MatchString(logText(t, rt, skiff.LogQuery{AppID: "oneoff-id"})) {
		t.Fatal("run not logged")
	}
	ents, _ := os.ReadDir(filepath.Join(f.cfg.DataDir, "instances"))
	if len(ents) != 0 {
		t.Fatalf("run left %v", ents)
	}
}

func TestIsolationBetweenApps(t *testing.T) {
	f, rt := newRuntime(t)
	a, err := rt.Start(context.Background(), spec(f, "alpha"))
	if err != nil {
		t.Fatal(err)
	}
	up := ready(t, rt, a.ID)
	var out bytes.Buffer
	code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "beta"), Args: []string{"connect", up.Addr}, Stdout: &out})
	if err != nil || code != 1 {
		t.Fatalf("beta reached alpha's instance: %d %v %s", code, err, out.String())
	}
	// alpha's files: beta's root is its own overlay.
	code, _ = rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "beta"), Args: []string{"cat", filepath.Join(f.cfg.DataDir, "instances", a.ID, "instance.json")}})
	if code != 1 {
		t.Fatal("beta read alpha's instance file")
	}
}

func TestReadoptAfterDaemonRestart(t *testing.T) {
	f := newFixture(t)
	rt := f.open(t)
	in, err := rt.Start(context.Background(), spec(f, "durable"))
	if err != nil {
		t.Fatal(err)
	}
	up := ready(t, rt, in.ID)
	rt.Close() // the daemon goes away; the instance stays
	if body := get(t, "http://"+up.Addr+"/"); body != "hello from web.1\n" {
		t.Fatalf("instance died with the daemon: %q", body)
	}
	time.Sleep(1500 * time.Millisecond)
	rt2 := f.open(t)
	t.Cleanup(func() { stopAll(t, rt2) })
	got := ready(t, rt2, in.ID)
	if got.Addr != up.Addr || got.Restarts != 0 || got.State != skiff.InstanceUp {
		t.Fatalf("re-adopted %+v, was %+v", got, up)
	}
	// Its uptime goes on from its start, not from the re-adoption.
	if d := got.StartedAt.Sub(up.StartedAt); d < -time.Second/2 || d > time.Second/2 || time.Since(got.StartedAt) < 1500*time.Millisecond {
		t.Fatalf("re-adopted instance started at %v, was %v", got.StartedAt, up.StartedAt)
	}
	// Its output still reaches the log through the reopened FIFO.
	get(t, "http://"+up.Addr+"/env")
	if err := rt2.Stop(context.Background(), in.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logText(t, rt2, skiff.LogQuery{AppID: "durable-id"}), "Process exited with status 143") {
		t.Fatalf("stop of the adopted instance not logged:\n%s", logText(t, rt2, skiff.LogQuery{AppID: "durable-id"}))
	}
}

// TestRestartsSurviveReadoption: ps's restart count and last exit outlive
// the daemon, and a process that ended while no daemon ran counts as a
// crash.
func TestRestartsSurviveReadoption(t *testing.T) {
	f := newFixture(t)
	rt := f.open(t)
	crashy, err := rt.Start(context.Background(), spec(f, "crashy", "exit", "3"))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "3 restarts", 15*time.Second, func() bool { return instance(rt, crashy.ID).Restarts >= 3 })
	// brief starts last, just before the daemon goes, and ends while it
	// is away (not before, however slow the restarts above were).
	brief, err := rt.Start(context.Background(), spec(f, "brief", "sleep", "2s"))
	if err != nil {
		t.Fatal(err)
	}
	rt.Close()
	before := instance(rt, crashy.ID)
	if b := instance(rt, brief.ID); b.Restarts != 0 {
		t.Fatalf("brief ended before the daemon went: %+v", b)
	}
	waitUntil(t, "brief's end while the daemon is away", 30*time.Second, func() bool {
		states, _ := f.env.Runc.List(context.Background())
		for _, st := range states {
			if st.ID == brief.ID {
				return st.Status == "stopped"
			}
		}
		return false
	})
	rt2 := f.open(t)
	t.Cleanup(func() { stopAll(t, rt2) })
	got := instance(rt2, crashy.ID)
	// (It may have crashed again since, while the daemon was away or
	// after.)
	if got.Restarts < before.Restarts || got.LastExit == "" || got.LastExitAt.Before(before.LastExitAt) {
		t.Fatalf("after re-adoption %+v, before %+v", got, before)
	}
	b := instance(rt2, brief.ID)
	if b.Restarts != 1 || b.LastExit != "exited (status unknown)" {
		t.Fatalf("an instance that ended while the daemon was away: %+v", b)
	}
	if logs := logText(t, rt2, skiff.LogQuery{AppID: "brief-id"}); !strings.Contains(logs, "State changed from up to crashed") {
		t.Fatalf("its crash is not logged:\n%s", logs)
	}
}

// TestRunShellWithTerminal: `run` with a TTY gives the terminal to the
// app behind skiff-init: a shell prompt, ctrl-C ending the command the
// shell runs (not the shell), and the shell's exit code.
func TestRunShellWithTerminal(t *testing.T) {
	f, rt := newRuntime(t)
	s := spec(f, "console")
	s.Image = busyboxImage(t, f.images, "exit 1")
	s.Env = map[string]string{"PS1": "PROMPT> "}
	inR, inW := io.Pipe()
	out := &containertest.Buffer{}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *s, Args: []string{"sh", "-i"}, Stdin: inR, Stdout: out,
			TTY: &skiff.TTY{Term: "dumb", Width: 80, Height: 24}})
		done <- result{code, err}
	}()
	wait := func(s string, n int) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("%d× %q in %q", n, s, out.String()), 10*time.Second, func() bool { return strings.Count(out.String(), s) >= n })
	}
	wait("PROMPT> ", 1)
	io.WriteString(inW, "sleep 30\n")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(inW, "\x03")
	wait("PROMPT> ", 2)
	io.WriteString(inW, "exit 4\n")
	select {
	case r := <-done:
		if r.err != nil || r.code != 4 {
			t.Fatalf("run: %d %v; terminal: %q", r.code, r.err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the shell did not exit; terminal: %q", out.String())
	}
	inW.Close()
}

// An instance's /proc/self/mountinfo names no host path: not the data
// directory (layers, upper directory, init, resolv.conf and hosts), not
// where skiff keeps anything.
func TestMountinfoHidesHostPaths(t *testing.T) {
	f, rt := newRuntime(t)
	var out, errOut bytes.Buffer
	code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "paths"), Args: []string{"cat", "/proc/self/mountinfo"}, Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("run: %d %v %s", code, err, errOut.String())
	}
	mi := out.String()
	if !strings.Contains(mi, " / / ") || !strings.Contains(mi, "/dev/init") {
		t.Fatalf("not a mountinfo:\n%s", mi)
	}
	for _, leak := range []string{f.cfg.DataDir, filepath.Base(filepath.Dir(f.cfg.DataDir)), "/layers/", "/instances/"} {
		if strings.Contains(mi, leak) {
			t.Errorf("mountinfo names %q:\n%s", leak, mi)
		}
	}
}
