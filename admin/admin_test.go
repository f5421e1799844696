package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/cron"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/gitserver"
	"github.com/skiffhq/skiff/router"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
	"github.com/skiffhq/skiff/volume"
)

// The admin tests run commands through admin.Runner over the real store,
// deploy pipeline, router and git repositories, with skifftest's scheduler
// and builder: what a command prints, its exit status, and what it changed.

const baseDomain = "skiff.test"

type server struct {
	t        *testing.T
	db       *store.DB
	router   *router.Router
	pipeline *deploy.Pipeline
	repos    *gitserver.Repos
	sched    *skifftest.Scheduler
	runner   *admin.Runner
	dir      string
	users    map[string]*skiff.Actor
}

// serverOption changes the pipeline's and the commands' services before
// the server is made.
type serverOption func(db *store.DB, dcfg *deploy.Config, svc *admin.Services)

func newServer(t *testing.T, opts ...serverOption) *server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := router.New(router.Config{BaseDomain: baseDomain, LogDir: filepath.Join(dir, "logs"), TLSDir: filepath.Join(dir, "tls")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Shutdown(context.Background()) })
	repos, err := gitserver.NewRepos(filepath.Join(dir, "repos"))
	if err != nil {
		t.Fatal(err)
	}
	images := skifftest.NewImages()
	host := skifftest.NewHost(images, t.TempDir())
	t.Cleanup(host.Close)
	sched := host.Scheduler(skifftest.Config{Grace: time.Second})
	builder := skifftest.NewBuilder(images)
	vols, err := volume.New(volume.Config{Dir: filepath.Join(dir, "volumes"), Directories: true})
	if err != nil {
		t.Fatal(err)
	}
	jobs := cron.New(cron.Config{Store: db, Runs: &cron.SchedulerRuns{Scheduler: sched, Formation: db.Formation}, Log: log})
	dcfg := deploy.Config{Store: db, Repos: repos, Builder: builder, Scheduler: sched, Routes: rt, Volumes: vols, Log: log,
		BaseDomain: baseDomain, ReadyTimeout: 5 * time.Second, StopGrace: time.Second, ReleaseImages: db.ReleaseImages}
	svc := admin.Services{Apps: db, Users: db, Access: db, Events: db, Pushes: db, Releases: db, Config: db, Domains: db, Settings: db,
		Builder: builder, Scheduler: sched, Routes: rt, Backup: db, Volumes: db, Cron: jobs, CronRuns: db}
	for _, o := range opts {
		o(db, &dcfg, &svc)
	}
	p := deploy.New(dcfg)
	svc.Deployer = p
	s := &server{t: t, db: db, router: rt, pipeline: p, repos: repos, sched: sched, dir: dir, users: map[string]*skiff.Actor{},
		runner: admin.New(svc, admin.Info{SSHHost: "git." + baseDomain + ":2222", Domain: baseDomain}, rt, log)}
	s.user("root", true)
	s.user("alice", false)
	s.user("bob", false)
	return s
}

// user registers a key for name and returns its actor.
func (s *server) user(name string, isAdmin bool) *skiff.Actor {
	u, err := s.db.AddKey(context.Background(), name, isAdmin, &skiff.Key{Fingerprint: "SHA256:" + name, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAA" + name})
	if err != nil {
		s.t.Fatal(err)
	}
	a := &skiff.Actor{Name: name, User: u, Fingerprint: "SHA256:" + name}
	s.users[name] = a
	return a
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string { return r.stdout + r.stderr }

// run runs a command line as who ("local" for the server's own CLI).
func (s *server) run(who string, stdin string, args ...string) result {
	actor := s.users[who]
	if who == "local" {
		actor = &skiff.Actor{Name: "local:root"}
	}
	var out, errOut bytes.Buffer
	inv := &skiff.Invocation{Actor: actor, Args: args, Stdout: &out, Stderr: &errOut}
	if stdin != "" {
		inv.Stdin = strings.NewReader(stdin)
	}
	code := s.runner.RunCommand(context.Background(), inv)
	return result{code, out.String(), errOut.String()}
}

func (s *server) must(who string, args ...string) result {
	s.t.Helper()
	r := s.run(who, "", args...)
	if r.code != 0 {
		s.t.Fatalf("%s %v: exit %d\n%s", who, args, r.code, r)
	}
	return r
}

// deploy pushes a Procfile app through the pipeline, as the pre-receive
// hook would.
func (s *server) deploy(name, procfile string) {
	s.t.Helper()
	s.deployFiles(name, map[string]string{"Procfile": procfile})
}

// deployFiles pushes an app of these files through the pipeline.
func (s *server) deployFiles(name string, files map[string]string) {
	s.t.Helper()
	if out, err := s.push(name, files); err != nil {
		s.t.Fatalf("deploy %s: %v\n%s", name, err, out)
	}
}

// push commits the files to the app's work tree and runs the pipeline for
// the commit; it returns the push's output and error.
func (s *server) push(name string, files map[string]string) (string, error) {
	t := s.t
	t.Helper()
	app, err := s.db.FindAppByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(s.dir, "work-"+name)
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(work, 0o755)
	git("init", "-q", "-b", "main")
	for file, body := range files {
		os.WriteFile(filepath.Join(work, file), []byte(body), 0o644)
	}
	git("add", "-A")
	git("commit", "-q", "--allow-empty", "-m", "deploy")
	commit := git("rev-parse", "HEAD")
	repo, _ := s.repos.Path(app.ID)
	git("push", "-q", repo, "HEAD:refs/heads/main")
	var out bytes.Buffer
	ctx := skiff.WithActor(context.Background(), s.users["root"])
	err = s.pipeline.PreReceive(ctx, &skiff.PushRequest{App: app, Pusher: s.users["root"],
		Updates: []skiff.RefUpdate{{Old: strings.Repeat("0", 40), New: commit, Ref: "refs/heads/main"}}}, &out)
	return out.String(), err
}

func (s *server) get(host, path string) (int, string) {
	w := httptest.NewRecorder()
	s.router.ServeHTTP(w, httptest.NewRequest("GET", "http://"+host+path, nil))
	return w.Code, w.Body.String()
}

func contains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestUsageAndExitStatus(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "ssh -p 2222 skiff@git.skiff.test help        the commands"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"apps:create"}, 2, "usage: skiff apps:create <app>"},
		{[]string{"config"}, 2, "usage: skiff config <app>"},
		{[]string{"apps", "--format", "yaml"}, 2, "--format takes json or text"},
		{[]string{"apps:destroy", "x", "--rf"}, 2, "usage:"},
		{[]string{"apps:create", "Bad_Name"}, 1, "invalid app name"},
		{[]string{"version"}, 0, ""},
	} {
		r := s.run("alice", "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.String(), tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, r.code, r, tc.code, tc.want)
		}
	}
	if r := s.must("alice", "apps:create", "--help"); !strings.Contains(r.stdout, "apps:create <app>") {
		t.Errorf("--help: %s", r)
	}
	if r := s.run("alice", "", "ps"); r.code != 2 {
		t.Errorf("a topic as a command: %s", r)
	}
}

// Admin-only commands and other people's apps answer "not authorized",
// whether the app exists or not.
func TestAuthorization(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	for _, args := range [][]string{
		{"keys"}, {"backup"}, {"builder:create"}, {"keys:add", "eve"},
		{"config", "shop"}, {"config", "nothing-here"}, {"apps:destroy", "shop", "--force"}, {"domains:add", "shop", "www.example.com"},
		{"checks:set", "shop", "path=/up"}, {"maintenance:on", "shop"}, {"access:add", "shop", "bob"}, {"logs", "nothing-here"},
	} {
		r := s.run("bob", "", args...)
		if r.code != 1 || strings.TrimSpace(r.stderr) != "!     not authorized" || r.stdout != "" {
			t.Errorf("bob %v: exit %d %q", args, r.code, r)
		}
	}
	// Granted access is not ownership.
	s.must("alice", "access:add", "shop", "bob")
	s.must("bob", "config:set", "shop", "A=1")
	if r := s.run("bob", "", "apps:destroy", "shop", "--force"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("a grantee destroyed the app: %s", r)
	}
	// An admin learns that an app does not exist, and how to make it.
	if r := s.run("root", "", "config", "nothing-here"); r.code != 1 || !strings.Contains(r.stderr, "apps:create nothing-here") {
		t.Errorf("admin on a missing app: %s", r)
	}
	if r := s.run("local", "", "config", "shop"); r.code != 0 || !strings.Contains(r.stdout, "A") {
		t.Errorf("the local CLI: %s", r)
	}
	// The refusals changed nothing.
	if r := s.must("alice", "access", "shop", "--format", "json"); strings.Contains(r.stdout, "eve") {
		t.Errorf("access after refused changes: %s", r.stdout)
	}
}

// Settings commands make one change through the Deployer; the router
// has it at once, and the reports show it.
func TestSettingsCommands(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	s.deploy("shop", "web: serve\n")
	host := "shop." + baseDomain
	if code, body := s.get(host, "/"); code != 200 || body != "hello from web.1\n" {
		t.Fatalf("deployed app: %d %q", code, body)
	}

	r := s.must("alice", "checks:set", "shop", "path=/up", "timeout=2.5", "deadline=60s")
	contains(t, "checks:set", r.String(), "Setting the checks of shop... done", "Path", "/up", "2.5s", "60s", "30s (default)")
	var checks map[string]string
	if err := json.Unmarshal([]byte(s.must("alice", "checks", "shop", "--format", "json").stdout), &checks); err != nil ||
		checks["path"] != "/up" || checks["timeout"] != "2.5" || checks["deadline"] != "60" || checks["wait-to-retire"] != "" {
		t.Fatalf("checks json: %v %v", checks, err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"checks:set", "shop", "color=red"}, 2, "is not one of path=/up"},
		{[]string{"checks:set", "shop", "path=up"}, 1, "must start with /"},
		{[]string{"checks:set", "shop", "timeout=9999"}, 1, "timeout takes seconds from 1 to 3600"},
		{[]string{"proxy:set", "shop", "gzip", "on"}, 2, "unknown proxy setting"},
		{[]string{"proxy:set", "shop", "max-body-size", "lots"}, 1, "invalid size"},
		{[]string{"proxy:set", "shop", "response-timeout", "0.5"}, 1, "response-timeout takes seconds from 1 to 3600"},
		{[]string{"certs:hsts", "shop", "maybe"}, 2, "takes on or off"},
	} {
		if r := s.run("alice", "", tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d %q, want %d %q", tc.args, r.code, r, tc.code, tc.want)
		}
	}
	// The refused ones changed nothing.
	if got, _ := s.db.Settings(context.Background(), mustApp(t, s, "shop").ID); got.Check.Path != "/up" || got.Check.Timeout != 2500*time.Millisecond || got.MaxBodyBytes != 0 {
		t.Fatalf("settings after refused changes: %+v", got)
	}

	s.must("alice", "proxy:set", "shop", "max-body-size", "1k")
	if r := s.must("alice", "proxy", "shop"); !strings.Contains(r.stdout, "1K") || !strings.Contains(r.stdout, "30s (default)") {
		t.Errorf("proxy report: %s", r)
	}
	s.must("alice", "proxy:set", "shop", "max-body-size")
	if r := s.must("alice", "proxy", "shop", "--format", "json"); !strings.Contains(r.stdout, `"max-body-size": ""`) {
		t.Errorf("proxy reset: %s", r)
	}

	s.must("alice", "maintenance:on", "shop")
	if code, _ := s.get(host, "/"); code != 503 {
		t.Fatalf("maintenance on: %d", code)
	}
	if r := s.run("alice", "<h1>soon</h1>", "maintenance:page", "shop"); r.code != 0 {
		t.Fatal(r)
	}
	if code, body := s.get(host, "/"); code != 503 || !strings.Contains(body, "<h1>soon</h1>") {
		t.Fatalf("maintenance page: %d %q", code, body)
	}
	if r := s.run("alice", strings.Repeat("x", skiff.MaxMaintenancePage+1), "maintenance:page", "shop"); r.code != 1 || !strings.Contains(r.stderr, "over 256 KiB") {
		t.Errorf("a page too large: %s", r)
	}
	if r := s.must("alice", "maintenance", "shop"); r.stdout != "on\n" {
		t.Errorf("maintenance report: %q", r.stdout)
	}
	s.must("alice", "maintenance:off", "shop")
	if code, _ := s.get(host, "/"); code != 200 {
		t.Fatalf("maintenance off: %d", code)
	}

	s.must("alice", "buildpacks:set", "shop", "skiff/procfile")
	s.must("alice", "buildpacks:add", "shop", "skiff/nodejs", "--index", "1")
	if r := s.must("alice", "buildpacks", "shop", "--format", "json"); strings.Join(strings.Fields(r.stdout), "") != `["skiff/nodejs","skiff/procfile"]` {
		t.Errorf("buildpacks: %s", r.stdout)
	}
	if r := s.run("alice", "", "buildpacks:add", "shop", "skiff/nodejs"); r.code != 1 || !strings.Contains(r.stderr, "already uses") {
		t.Errorf("a buildpack twice: %s", r)
	}
	s.must("alice", "buildpacks:clear", "shop")

	// Each change is one audit event, by who made it.
	events := s.must("root", "events", "shop", "--format", "json").stdout
	for _, action := range []string{"checks:set", "proxy:set", "maintenance:on", "maintenance:page", "maintenance:off", "buildpacks:set", "buildpacks:clear"} {
		if !strings.Contains(events, `"action": "`+action+`"`) {
			t.Errorf("no %s event:\n%s", action, events)
		}
	}
}

func mustApp(t *testing.T, s *server, name string) *skiff.App {
	t.Helper()
	a, err := s.db.FindAppByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Domains: canonical hosts, one app per host, the server's own names and
// wildcards held back, and the router following at once.
func TestDomainCommands(t *testing.T) {
	s := newServer(t)
	s.must("alice", "apps:create", "shop")
	s.must("alice", "apps:create", "blog")
	s.deploy("shop", "web: serve\n")
	r := s.must("alice", "domains:add", "shop", "WWW.Example.ORG.")
	contains(t, "domains:add", r.stderr, "Adding www.example.org to shop... done", "Point its DNS")
	if code, _ := s.get("www.example.org", "/"); code != 200 {
		t.Fatalf("the custom domain answers %d", code)
	}
	for _, tc := range []struct {
		who, app, host, want string
	}{
		{"alice", "blog", "www.example.org", "already attached to another app"},
		{"alice", "blog", "blog." + baseDomain, "under the server's own domain"},
		{"alice", "blog", "*.example.net", "only admins may add wildcard domains"},
		{"alice", "blog", "10.0.0.1", "invalid domain"},
		{"alice", "blog", "localhost", "invalid domain"},
	} {
		if r := s.run(tc.who, "", "domains:add", tc.app, tc.host); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("domains:add %s %s: %s", tc.app, tc.host, r)
		}
	}
	s.must("root", "domains:add", "blog", "*.example.net")
	if r := s.must("alice", "domains", "shop", "--format", "json"); !strings.Contains(r.stdout, `"www.example.org"`) || !strings.Contains(r.stdout, `"default": "shop.skiff.test"`) {
		t.Errorf("domains json: %s", r.stdout)
	}
	s.must("alice", "domains:remove", "shop", "www.example.org")
	if code, _ := s.get("www.example.org", "/"); code != 404 {
		t.Fatalf("a removed domain answers %d", code)
	}
	if r := s.run("alice", "", "domains:remove", "shop", "www.example.org"); r.code != 1 || !strings.Contains(r.stderr, "is not a domain of shop") {
		t.Errorf("removing it again: %s", r)
	}
}

// An app's life through the commands: config before and after the first
// deploy, scale, restart, rollback, rename, destroy.
func TestAppCommands(t *testing.T) {
	s := newServer(t)
	r := s.must("alice", "apps:create", "shop")
	contains(t, "apps:create", r.String(), "ssh://skiff@git.skiff.test:2222/shop")
	s.must("alice", "config:set", "shop", "GREETING=hello world")
	if r := s.must("alice", "config:get", "shop", "GREETING"); r.stdout != "hello world\n" {
		t.Errorf("config:get: %q", r.stdout)
	}
	if r := s.run("alice", "", "config:set", "shop", "PORT=1"); r.code != 1 || !strings.Contains(r.stderr, "set by skiff itself") {
		t.Errorf("a reserved key: %s", r)
	}
	s.must("alice", "ps:scale", "shop", "web=2")
	s.deploy("shop", "web: serve\nworker: sleep 1h\n")
	if r := s.must("alice", "ps", "shop", "--format", "json"); strings.Count(r.stdout, `"process_type": "web"`) != 2 {
		t.Fatalf("the formation set before the deploy: %s", r.stdout)
	}
	if _, env := s.get("shop."+baseDomain, "/env"); !strings.Contains(env, `"GREETING=hello world"`) {
		t.Fatalf("config in the environment:\n%s", env)
	}
	r = s.must("alice", "config:set", "shop", "GREETING=hi")
	contains(t, "config:set", r.String(), "Releasing v2", "Released v2")
	s.must("alice", "ps:restart", "shop", "web")
	s.must("alice", "releases:rollback", "shop")
	if r := s.must("alice", "releases", "shop", "--format", "json"); strings.Count(r.stdout, `"version"`) != 3 || !strings.Contains(r.stdout, "Rollback to v1") {
		t.Fatalf("releases: %s", r.stdout)
	}
	if _, env := s.get("shop."+baseDomain, "/env"); !strings.Contains(env, `"GREETING=hello world"`) {
		t.Fatalf("the rollback's config:\n%s", env)
	}
	// An unknown type, or the release command, is refused before anything
	// says it is being scaled, and the formation stays.
	for arg, want := range map[string]string{"clock=1": "shop has no process type clock; it has web, worker", "bogus=2": "shop has no process type bogus; it has web, worker", "release=1": "cannot be scaled"} {
		r := s.run("alice", "", "ps:scale", "shop", "web=1", arg)
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.String(), "Scaling") {
			t.Errorf("ps:scale shop web=1 %s: %s", arg, r)
		}
	}
	if r := s.must("alice", "ps:scale", "shop"); strings.TrimSpace(r.stdout) != "web=2 worker=0" {
		t.Errorf("the formation after refused scales: %s", r.stdout)
	}
	var out bytes.Buffer
	code := s.runner.RunCommand(context.Background(), &skiff.Invocation{Actor: s.users["alice"], Args: []string{"run", "shop", "exit", "3"}, Stdout: &out, Stderr: &out})
	if code != 3 || !strings.Contains(out.String(), "exiting 3") {
		t.Errorf("run's exit code: %d %q", code, out.String())
	}
	if r := s.run("alice", "", "logs", "shop", "-n", "1000"); r.code != 0 || !strings.Contains(r.stdout, "listening on 5000") {
		t.Errorf("logs: %s", r)
	}
	s.must("alice", "apps:rename", "shop", "store")
	if code, _ := s.get("store."+baseDomain, "/"); code != 200 {
		t.Fatalf("the renamed app answers %d", code)
	}
	if r := s.run("alice", "", "apps:destroy", "store"); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("destroy without --force: %s", r)
	}
	s.must("alice", "apps:destroy", "store", "--force")
	if code, _ := s.get("store."+baseDomain, "/"); code != 404 {
		t.Fatalf("a destroyed app answers %d", code)
	}
	if list, _ := s.sched.Instances(context.Background(), ""); len(list) != 0 {
		t.Fatalf("instances left: %d", len(list))
	}
}

// With a terminal (ssh -t) a command's lines end in CR LF, its errors'
// too; data on stdout (a copy of the database) arrives byte for byte.
func TestTerminalLineEnds(t *testing.T) {
	s := newServer(t)
	run := func(who string, args ...string) result {
		var out, errOut bytes.Buffer
		inv := &skiff.Invocation{Actor: s.users[who], Args: args, Stdout: &out, Stderr: &errOut, TTY: &skiff.TTY{Term: "xterm", Width: 80, Height: 24}}
		return result{s.runner.RunCommand(context.Background(), inv), out.String(), errOut.String()}
	}
	bare := regexp.MustCompile("(^|[^\r])\n")
	if r := run("alice", "help"); r.code != 0 || !strings.Contains(r.stdout, "\r\n") || bare.MatchString(r.stdout) {
		t.Errorf("help: %q", r.stdout)
	}
	if r := run("alice", "config", "nosuchapp"); r.code == 0 || !strings.HasSuffix(r.stderr, "\r\n") || bare.MatchString(r.stderr) {
		t.Errorf("an error: %q", r.stderr)
	}
	r := run("root", "backup")
	plain := s.run("root", "", "backup")
	if r.code != 0 || plain.code != 0 || !strings.HasPrefix(r.stdout, "SQLite format 3\x00") || len(r.stdout)%4096 != 0 || !strings.Contains(r.stdout, "\n") {
		t.Fatalf("backup with a terminal: exit %d, %d bytes (%d without one): %s", r.code, len(r.stdout), len(plain.stdout), r.stderr)
	}
}
