package build

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// noBuildLeftovers checks that a finished build left no container, cgroup
// or scratch directory behind.
func noBuildLeftovers(t *testing.T, p *Platform, buildID string) {
	t.Helper()
	p.settles.Wait() // what is left of a build goes once it has settled
	out, _ := exec.Command("runc", "--root", p.cfg.StateDir, "list", "-q").Output()
	if strings.Contains(string(out), "build-"+buildID) {
		t.Errorf("runc still lists build-%s", buildID)
	}
	for _, c := range []string{"pids", "memory", "unified"} {
		dir := filepath.Join("/sys/fs/cgroup", c, p.cfg.CgroupParent, "build-"+buildID)
		if c == "unified" {
			dir = filepath.Join("/sys/fs/cgroup", p.cfg.CgroupParent, "build-"+buildID)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup %s left behind", dir)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil && len(bytes.TrimSpace(b)) > 0 {
			t.Errorf("processes left in %s: %s", dir, b)
		}
	}
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "tmp", "builds", buildID)); err == nil {
		t.Errorf("scratch of %s left behind", buildID)
	}
}

func TestSyntheticBuildFailures(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{Limits: Limits{Timeout: 8 * time.Second, Pids: 128, Memory: 512 << 20}, LogMaxBytes: 4 << 20})
	builder := synthBuilder(t, p)
	app := &skiff.App{ID: "app2", Name: "failing"}
	cases := []struct {
		name, src   string
		files       map[string]string
		wantErr     string
		wantOut     string
		maxDuration time.Duration
	}{
		{name: "compile error", src: "fail", wantErr: "a buildpack failed: main.go:3: syntax error: unexpected newline", wantOut: "syntax error: unexpected newline"},
		{name: "nothing detects", files: map[string]string{"README": "x"}, wantErr: "no buildpack detected this app"},
		{name: "sleep infinity", src: "sleep", wantErr: "timed out after 8s", maxDuration: 90 * time.Second},
		{name: "fork bomb", src: "forkbomb", wantErr: "timed out", maxDuration: 90 * time.Second},
		{name: "output without newlines", src: "spam", wantErr: "a buildpack failed", wantOut: "the rest is not shown"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := c.files
			if files == nil {
				files = map[string]string{"synth.txt": c.src}
			}
			id := "f" + string(rune('a'+i))
			var out bytes.Buffer
			peak := watchPids(t, p.cfg.CgroupParent, "build-"+id)
			start := time.Now()
			_, err := p.Build(context.Background(), &skiff.BuildRequest{
				App: app, BuildID: id, Commit: "abc", Builder: builder, Source: tarOf(t, files),
			}, &out)
			took := time.Since(start)
			if err == nil || !strings.Contains(skiff.ErrorMessage(err), c.wantErr) {
				t.Fatalf("err = %v, want %q; output:\n%.2000s", err, c.wantErr, out.String())
			}
			if skiff.ErrorCode(err) != skiff.EINVALID {
				t.Errorf("code %s, want invalid (the app's fault)", skiff.ErrorCode(err))
			}
			if out.Len() > int(p.cfg.LogMaxBytes)+64<<10 {
				t.Errorf("%d bytes of output reached the pusher", out.Len())
			}
			if c.wantOut != "" && !strings.Contains(out.String(), c.wantOut) {
				t.Errorf("output lacks %q:\n%s", c.wantOut, out.String())
			}
			if c.maxDuration > 0 && took > c.maxDuration {
				t.Errorf("took %s, want under %s", took, c.maxDuration)
			}
			if fi, err := os.Stat(p.logPath(app.ID, id)); err != nil || fi.Size() > p.cfg.LogMaxBytes+100 {
				t.Errorf("log: %v, size %v", err, fi)
			}
			noBuildLeftovers(t, p, id)
			if n := peak(); c.src == "forkbomb" && (n < 100 || n > 128) {
				t.Errorf("fork bomb peaked at %d processes; want it held at pids.max (128)", n)
			}
		})
	}
}

// watchPids samples the build cgroup's pids.current until the returned
// function is called, which returns the peak seen.
func watchPids(t *testing.T, parent, id string) func() int64 {
	files := []string{
		filepath.Join("/sys/fs/cgroup/pids", parent, id, "pids.current"),
		filepath.Join("/sys/fs/cgroup", parent, id, "pids.current"),
	}
	stop := make(chan struct{})
	done := make(chan int64)
	go func() {
		var peak int64
		for {
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil {
					if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > peak {
						peak = n
					}
				}
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(stop); return <-done }
}

func TestConcurrentBuildOfOneAppRefused(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{Limits: Limits{Timeout: 20 * time.Second}})
	builder := synthBuilder(t, p)
	app := &skiff.App{ID: "app3", Name: "busy"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Build(ctx, &skiff.BuildRequest{App: app, BuildID: "s1", Builder: builder,
			Source: tarOf(t, map[string]string{"synth.txt": "sleep"})}, &bytes.Buffer{})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		_, running := p.running[app.ID]
		p.mu.Unlock()
		if running || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := p.Build(context.Background(), &skiff.BuildRequest{App: app, BuildID: "s2", Builder: builder,
		Source: tarOf(t, map[string]string{"synth.txt": "ok"})}, &bytes.Buffer{})
	if skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Errorf("second build: %v, want a conflict", err)
	}
	time.Sleep(time.Second) // let the first reach the sandbox
	if !p.Cancel(app.ID) {
		t.Error("Cancel found no build")
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "canceled") {
			t.Errorf("canceled build: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("cancel did not stop the build")
	}
	cancel()
	noBuildLeftovers(t, p, "s1")
}

func TestBuildFillingTheDiskIsStopped(t *testing.T) {
	requireRoot(t)
	dir := openDataDir(t)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	// The floor sits 256 MiB below today's free space; the build writes
	// up to 2 GiB, then would sleep for an hour.
	p := newTestPlatform(t, Config{DataDir: dir, MinFreeBytes: 64 << 20, DiskFloorBytes: free - 256<<20,
		Limits: Limits{Timeout: 2 * time.Minute}})
	builder := synthBuilder(t, p)
	var out bytes.Buffer
	start := time.Now()
	_, err := p.Build(context.Background(), &skiff.BuildRequest{App: &skiff.App{ID: "filler", Name: "filler"}, BuildID: "fill1",
		Builder: builder, Source: tarOf(t, map[string]string{"synth.txt": "fill 2048"})}, &out)
	if err == nil || !strings.Contains(err.Error(), "filled the disk") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("stopped after %s", took)
	}
	noBuildLeftovers(t, p, "fill1") // the scratch space, with what it wrote, is gone
}

// Failures of buildpacks skiff did not write say what went wrong: a pinned
// buildpack that does not detect, an unsupported buildpack API, an image
// extension.
func TestLifecycleErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		code          int
		lastErr, want string
		pins          []string
	}{
		{20, "No buildpack groups passed detection.", "the buildpacks pinned with buildpacks:set (fail_detect_buildpack) do not detect this app (their output is above)", []string{"fail_detect_buildpack"}},
		{20, "No buildpack groups passed detection.", "no buildpack detected this app", nil},
		{12, "failed to set API for Buildpack 'bad_api@bad_api_version': buildpack API version '0.1' is incompatible with the lifecycle", "buildpack bad_api asks for buildpack API 0.1, which the lifecycle does not support (it supports 0.7 to 0.12)", nil},
		{22, "failed to detect: detected order contains extensions which is not supported by the creator", "this builder chose an image extension, and skiff does not run image extensions", nil},
	} {
		if got := lifecycleError(tc.code, tc.lastErr, "", tc.pins...).Error(); !strings.Contains(got, tc.want) {
			t.Errorf("%d %q: %q, want %q", tc.code, tc.lastErr, got, tc.want)
		}
	}
}
