package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/gitserver"
	"github.com/skiffhq/skiff/router"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
)

// The pipeline tests wire the real store (a SQLite file), the real router
// (its health-gated switch, served through ServeHTTP), real git
// repositories, and the in-memory scheduler and builder from skifftest,
// whose instances are real HTTP servers on 127.0.0.1. They need no root
// and run in seconds.

const baseDomain = "skiff.test"

// machine is what outlives a daemon: the data directory and the fake
// scheduler's host (its instances) and image store.
type machine struct {
	t      *testing.T
	dir    string
	images *skifftest.Images
	host   *skifftest.Host
	sched  skifftest.Config
	ready  time.Duration // the pipeline's ReadyTimeout
	alive  []*daemon
	done   chan struct{} // closed at the end of the test: frozen goroutines go
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	images := skifftest.NewImages()
	m := &machine{t: t, dir: t.TempDir(), images: images, host: skifftest.NewHost(images, t.TempDir()),
		sched: skifftest.Config{Grace: time.Second}, ready: 5 * time.Second, done: make(chan struct{})}
	t.Cleanup(func() {
		close(m.done)
		for _, d := range m.alive {
			d.kill()
		}
		m.host.Close()
	})
	return m
}

// daemon is one run of skiff's daemon over the machine: what dies with a
// kill -9 (the scheduler's supervision, the router's table, the pipeline's
// locks and goroutines).
type daemon struct {
	m        *machine
	db       *store.DB
	sched    *skifftest.Scheduler
	router   *router.Router
	pipeline *deploy.Pipeline
	builder  *skifftest.Builder
	repos    *gitserver.Repos
	killed   chan struct{}
	once     sync.Once
}

// hooks intercept the pipeline's calls to its services, to stop a deploy
// at a chosen step (and kill the daemon there).
type hooks struct {
	afterCreateRelease func()
	beforeStart        func(*skiff.InstanceSpec)
	afterStart         func(*skiff.Instance)
	afterSwitch        func()
	beforeStop         func(id string)
}

// start starts a daemon as `skiff serve` does: recovery and routes before
// serving, then Reconcile.
func (m *machine) start(h *hooks) *daemon {
	m.t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(m.dir, "skiff.db"))
	if err != nil {
		m.t.Fatal(err)
	}
	repos, err := gitserver.NewRepos(filepath.Join(m.dir, "repos"))
	if err != nil {
		m.t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	rt, err := router.New(router.Config{BaseDomain: baseDomain, LogDir: filepath.Join(m.dir, "logs", "router"), TLSDir: filepath.Join(m.dir, "tls"),
		DrainTimeout: time.Second}, log)
	if err != nil {
		m.t.Fatal(err)
	}
	d := &daemon{m: m, db: db, sched: m.host.Scheduler(m.sched), router: rt, builder: skifftest.NewBuilder(m.images), repos: repos, killed: make(chan struct{})}
	if h == nil {
		h = &hooks{}
	}
	d.pipeline = deploy.New(deploy.Config{
		Store: hookedStore{db, h}, Repos: repos, Builder: d.builder, Scheduler: hookedScheduler{d.sched, h}, Routes: hookedRoutes{rt, h},
		Log: log, BaseDomain: baseDomain, ReadyTimeout: m.ready, StopGrace: time.Second,
		ImageGC: d.builder.CollectGarbage, ReleaseImages: db.ReleaseImages,
	})
	if _, err := db.FindUserByName(ctx, admin.Name); skiff.ErrorCode(err) == skiff.ENOTFOUND {
		u, err := db.AddKey(ctx, admin.Name, true, &skiff.Key{Fingerprint: "SHA256:admin", Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAAadmin"})
		if err != nil {
			m.t.Fatal(err)
		}
		*admin.User = *u
	}
	m.alive = append(m.alive, d)
	d.pipeline.Recover(ctx, 5*time.Second)
	return d
}

// reconcile runs what serve runs in the background once it serves.
func (d *daemon) reconcile() {
	d.m.t.Helper()
	if err := d.pipeline.Reconcile(context.Background()); err != nil {
		d.m.t.Fatalf("reconcile: %v", err)
	}
}

// kill ends the daemon as kill -9 would: nothing it runs touches the
// machine again (its store handle and scheduler are closed, its router
// gone); the instances stay.
func (d *daemon) kill() {
	d.once.Do(func() {
		close(d.killed)
		d.sched.Close()
		d.router.Shutdown(context.Background())
		d.db.Close()
	})
}

// freeze blocks the calling goroutine of the daemon for the rest of the
// test: where kill -9 stopped it. (When the test ends it goes on, and finds
// every service closed.)
func (d *daemon) freeze() { <-d.m.done }

type hookedStore struct {
	*store.DB
	h *hooks
}

func (s hookedStore) CreateRelease(ctx context.Context, r *skiff.Release) error {
	err := s.DB.CreateRelease(ctx, r)
	if err == nil && s.h.afterCreateRelease != nil {
		s.h.afterCreateRelease()
	}
	return err
}

type hookedScheduler struct {
	skiff.Scheduler
	h *hooks
}

func (s hookedScheduler) Start(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error) {
	if s.h.beforeStart != nil {
		s.h.beforeStart(spec)
	}
	in, err := s.Scheduler.Start(ctx, spec)
	if err == nil && s.h.afterStart != nil {
		s.h.afterStart(in)
	}
	return in, err
}

func (s hookedScheduler) Stop(ctx context.Context, id string, grace time.Duration) error {
	if s.h.beforeStop != nil {
		s.h.beforeStop(id)
	}
	return s.Scheduler.Stop(ctx, id, grace)
}

type hookedRoutes struct {
	skiff.Routes
	h *hooks
}

func (r hookedRoutes) Deploy(ctx context.Context, appID string, backends []string) error {
	err := r.Routes.Deploy(ctx, appID, backends)
	if err == nil && r.h.afterSwitch != nil {
		r.h.afterSwitch()
	}
	return err
}

// admin is the actor of the tests' operations (a user in each test's
// store).
var admin = &skiff.Actor{Name: "admin", User: &skiff.User{Name: "admin", Admin: true}}

func adminCtx() context.Context { return skiff.WithActor(context.Background(), admin) }

// app is an app under test, with a work tree to commit to.
type app struct {
	d    *daemon
	app  *skiff.App
	work string
	head string // the deploy branch's commit in the app's repository
}

func (d *daemon) createApp(name string) *app {
	t := d.m.t
	t.Helper()
	a, err := d.pipeline.CreateApp(adminCtx(), name)
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(d.m.dir, "work-"+name)
	git(t, "", "init", "-q", "-b", "main", work)
	return &app{d: d, app: a, work: work}
}

// on is the same app as seen by another daemon over the machine.
func (a *app) on(d *daemon) *app {
	b := *a
	b.d = d
	return &b
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// push commits files to the work tree, puts the commit into the app's
// repository (as receive-pack would, without moving the ref) and runs the
// pre-receive pipeline; it returns the push's output and error.
func (a *app) push(files map[string]string) (string, error) {
	a.d.m.t.Helper()
	return a.receive(a.prepare(files))
}

// prepare commits files and returns the push of that commit.
func (a *app) prepare(files map[string]string) *skiff.PushRequest {
	t := a.d.m.t
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(a.work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, a.work, "add", "-A")
	git(t, a.work, "commit", "-q", "--allow-empty", "-m", "change")
	commit := git(t, a.work, "rev-parse", "HEAD")
	repo, _ := a.d.repos.Path(a.app.ID)
	git(t, a.work, "push", "-q", repo, "HEAD:refs/skifftest/incoming")
	old := a.head
	if old == "" {
		old = strings.Repeat("0", len(commit))
	}
	return &skiff.PushRequest{App: a.app, Pusher: admin, Updates: []skiff.RefUpdate{{Old: old, New: commit, Ref: "refs/heads/main"}}}
}

// receive runs the pipeline for a prepared push and, when it accepts the
// push, moves the ref as git would. It may run in a goroutine of its own
// (it calls no t.Fatal): one that the daemon's death leaves frozen.
func (a *app) receive(req *skiff.PushRequest) (string, error) {
	var out bytes.Buffer
	err := a.d.pipeline.PreReceive(adminCtx(), req, &out)
	select {
	case <-a.d.killed:
		return out.String(), errKilled // the hook died with the daemon: git rejects the push
	default:
	}
	if err == nil {
		repo, _ := a.d.repos.Path(a.app.ID)
		u := req.Updates[0]
		if gerr := exec.Command("git", "-C", repo, "update-ref", u.Ref, u.New).Run(); gerr != nil {
			return out.String(), gerr
		}
		a.head = u.New
	}
	return out.String(), err
}

var errKilled = errors.New("the daemon was killed")

// mustPush pushes and fails the test if the push is rejected.
func (a *app) mustPush(files map[string]string) string {
	a.d.m.t.Helper()
	out, err := a.push(files)
	if err != nil {
		a.d.m.t.Fatalf("push rejected: %v\n%s", err, out)
	}
	return out
}

// get asks the router for path on the app's host.
func (a *app) get(path string) (int, string) {
	req := httptest.NewRequest("GET", "http://"+a.app.Name+"."+baseDomain+path, nil)
	w := httptest.NewRecorder()
	a.d.router.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// serving fails the test unless the router answers for the app with
// release v (from the instance's SKIFF_RELEASE).
func (a *app) serving(v string) {
	t := a.d.m.t
	t.Helper()
	code, body := a.get("/env")
	if code != http.StatusOK || !strings.Contains(body, `"SKIFF_RELEASE=`+v+`"`) {
		t.Fatalf("the router answers %d for %s, want %s:\n%s", code, a.app.Name, v, body)
	}
}

// releases returns "v1:deployed* v2:failed" (newest last; * for current).
func (a *app) releases() string {
	t := a.d.m.t
	t.Helper()
	rels, err := a.d.db.ListReleases(context.Background(), a.app.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for i := len(rels) - 1; i >= 0; i-- {
		r := rels[i]
		s := "v" + itoa(r.Version) + ":" + string(r.Status)
		if r.Current {
			s += "*"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// instances returns "v1:web.1:up v2:web.1:up" for the app.
func (a *app) instances() string {
	t := a.d.m.t
	t.Helper()
	ins, err := a.d.sched.Instances(context.Background(), a.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, in := range ins {
		parts = append(parts, "v"+itoa(in.Spec.Release)+":"+in.Spec.Name()+":"+string(in.State))
	}
	return strings.Join(parts, " ")
}

func (a *app) instanceIDs(processType string) []string {
	ins, _ := a.d.sched.Instances(context.Background(), a.app.ID)
	var ids []string
	for _, in := range ins {
		if in.Spec.ProcessType == processType {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

func itoa(n int) string { return strconv.Itoa(n) }

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// webApp is a Procfile app whose web process serves (the probe's serve).
var webApp = map[string]string{"Procfile": "web: serve\n"}
