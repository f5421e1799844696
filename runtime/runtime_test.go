package runtime_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container/containertest"
	"github.com/skiffhq/skiff/internal/layer"
	"github.com/skiffhq/skiff/runtime"
)

type fixture struct {
	env    *containertest.Env
	cfg    runtime.Config
	image  string
	images string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	e := containertest.New(t)
	data := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(data, 0o711)
	t.Cleanup(func() { runtime.UnmountShare(data) }) // before the directory goes
	containertest.OpenPath(t, data)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ls, err := layer.NewStore(filepath.Join(data, "layers"), layer.Options{IDShift: int(e.Runc.IDMap().HostID)}, log)
	if err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(data, "images")
	f := &fixture{env: e, images: images, image: testImage(t, images)}
	f.cfg = runtime.Config{DataDir: data, ImageDir: images, Layers: ls, Runc: e.Runc, Log: log, Init: containertest.Init(t),
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond, Grace: 2 * time.Second}
	return f
}

func (f *fixture) open(t testing.TB) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(context.Background(), f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// newRuntime returns a runtime that stops every instance at the end of the
// test (before the leak check runs).
func newRuntime(t *testing.T) (*fixture, *runtime.Runtime) {
	f := newFixture(t)
	rt := f.open(t)
	t.Cleanup(func() { stopAll(t, rt) })
	return f, rt
}

func stopAll(t testing.TB, rt *runtime.Runtime) {
	list, _ := rt.Instances(context.Background(), "")
	for _, in := range list {
		if err := rt.Stop(context.Background(), in.ID, time.Second); err != nil {
			t.Errorf("stop %s: %v", in.ID, err)
		}
	}
	rt.Close()
}

func spec(f *fixture, app string, cmd ...string) *skiff.InstanceSpec {
	return &skiff.InstanceSpec{AppID: app + "-id", AppName: app, Release: 3, Image: f.image, ProcessType: "web", Index: 1,
		Command: cmd, Env: map[string]string{"GREETING": "a=b\nc", "EMPTY": ""},
		Limits: skiff.Limits{MemoryBytes: 64 << 20, CPU: 0.5, Pids: 64}}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func ready(t *testing.T, rt *runtime.Runtime, id string) *skiff.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rt.WaitReady(ctx, id); err != nil {
		t.Fatalf("ready: %v", err)
	}
	list, _ := rt.Instances(ctx, "")
	for _, in := range list {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("instance %s not listed", id)
	return nil
}

func logText(t *testing.T, rt *runtime.Runtime, q skiff.LogQuery) string {
	t.Helper()
	var sb strings.Builder
	if q.Lines == 0 {
		q.Lines = 10000
	}
	if err := rt.Logs(context.Background(), q, func(l skiff.LogLine) error {
		fmt.Fprintf(&sb, "%s[%s]: %s\n", l.Source, l.Process, l.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func TestServeEnvStatsLogsStop(t *testing.T) {
	f, rt := newRuntime(t)
	in, err := rt.Start(context.Background(), spec(f, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	up := ready(t, rt, in.ID)
	if body := get(t, "http://"+up.Addr+"/"); body != "hello from web.1\n" {
		t.Fatalf("body %q", body)
	}
	envs := get(t, "http://"+up.Addr+"/env")
	for _, want := range []string{`"GREETING=a=b\nc"`, `"EMPTY="`, `"PORT=5000"`, `"SKIFF_PROCESS=web.1"`, `"DYNO=web.1"`, `"FROM_IMAGE=yes"`, `"SKIFF_RELEASE=v3"`} {
		if !strings.Contains(envs, want) {
			t.Errorf("env lacks %s:\n%s", want, envs)
		}
	}
	if strings.Count(envs, "\n") != 9 { // and HOME, which runc sets from /etc/passwd
		t.Errorf("unexpected variables:\n%s", envs)
	}
	var out strings.Builder
	if code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "shop"), Args: []string{"cat", "/etc/hosts"}, Stdout: &out}); code != 0 || err != nil || !strings.Contains(out.String(), "localhost run-") {
		t.Errorf("/etc/hosts: %d %v %q", code, err, out.String())
	}
	if up.State != skiff.InstanceUp || up.MemoryBytes == 0 || up.MemoryLimit != 64<<20 {
		t.Errorf("instance %+v", up)
	}
	if err := rt.Stop(context.Background(), in.ID, 0); err != nil {
		t.Fatal(err)
	}
	if list, _ := rt.Instances(context.Background(), ""); len(list) != 0 {
		t.Fatalf("still listed: %+v", list)
	}
	logs := logText(t, rt, skiff.LogQuery{AppID: "shop-id", Process: "web"})
	for _, want := range []string{"app[web.1]: listening on 5000", "skiff[web.1]: State changed from starting to up", "skiff[web.1]: Stopping process with SIGTERM"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// A release phase's task (process type release, the release's version as
// its index) keeps its name, release.<version>, where another one-off is
// run.N: in the log, as its hostname and as DYNO.
func TestReleaseTaskKeepsItsName(t *testing.T) {
	f, rt := newRuntime(t)
	s := spec(f, "shop")
	s.ProcessType, s.Index = skiff.OneOffRelease, 7
	var out strings.Builder
	if code, err := rt.Run(context.Background(), &skiff.RunRequest{Spec: *s, Args: []string{"cat", "/etc/hosts"}, Stdout: &out}); code != 0 || err != nil || !strings.Contains(out.String(), "localhost release-7") {
		t.Errorf("/etc/hosts of the release task: %d %v %q", code, err, out.String())
	}
	logs := logText(t, rt, skiff.LogQuery{AppID: "shop-id"})
	for _, want := range []string{"skiff[release.7]: Starting process with command `cat /etc/hosts`", "skiff[release.7]: Process exited with status 0"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "[run.") {
		t.Errorf("the release task is logged as a one-off run:\n%s", logs)
	}
}
