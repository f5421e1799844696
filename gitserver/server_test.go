package gitserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/control"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/gitserver"
	"github.com/skiffhq/skiff/router"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
)

// The test binary is also the pre-receive hook git runs for each push
// (the daemon's `skiff hook pre-receive`): the hook script execs it with
// these arguments.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "hook" {
		os.Exit(control.Hook(os.Args[2], os.Stdin, os.LookupEnv, os.Stderr))
	}
	os.Exit(m.Run())
}

const baseDomain = "skiff.test"

// server is the SSH server in-process on 127.0.0.1:0, over the real store,
// admin commands, deploy pipeline, router and control socket, with
// skifftest's scheduler and builder; clients are OpenSSH and git.
type server struct {
	t      *testing.T
	dir    string
	addr   string
	db     *store.DB
	router *router.Router
	srv    *gitserver.Server
	keys   map[string]string // user → private key file
}

func newServer(t *testing.T) *server {
	t.Helper()
	for _, tool := range []string{"ssh", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
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
	p := deploy.New(deploy.Config{Store: db, Repos: repos, Builder: builder, Scheduler: sched, Routes: rt, Log: log,
		BaseDomain: baseDomain, ReadyTimeout: 5 * time.Second, StopGrace: time.Second})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	commands := admin.New(admin.Services{Apps: db, Users: db, Access: db, Events: db, Pushes: db, Releases: db, Config: db, Domains: db,
		Settings: db, Deployer: p, Builder: builder, Scheduler: sched, Routes: rt}, admin.Info{SSHHost: l.Addr().String(), Domain: baseDomain}, rt, log)
	hostKey, err := gitserver.LoadOrCreateHostKey(filepath.Join(dir, "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "control.sock")
	srv, err := gitserver.New(gitserver.Config{HostKey: hostKey, Users: db, Apps: db, Access: db, Deployer: p, Commands: commands, Repos: repos,
		Log: log, HookCommand: self, HooksDir: filepath.Join(dir, "hooks"), ControlSocket: socket, RevokeCheck: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := control.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctl := &control.Server{Commands: commands, Hooks: srv, Log: log}
	go ctl.Serve(cl)
	t.Cleanup(func() { ctl.Close() })
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s := &server{t: t, dir: dir, addr: l.Addr().String(), db: db, router: rt, srv: srv, keys: map[string]string{}}
	s.addUser("root", true)
	s.addUser("alice", false)
	s.addUser("bob", false)
	return s
}

// addUser makes a key pair for a user and registers its public half.
func (s *server) addUser(name string, isAdmin bool) {
	t := s.t
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(s.dir, name+".key")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	key := &skiff.Key{Fingerprint: gossh.FingerprintSHA256(sshPub), Type: sshPub.Type(),
		PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub)))}
	if _, err := s.db.AddKey(context.Background(), name, isAdmin, key); err != nil {
		t.Fatal(err)
	}
	s.keys[name] = file
}

func (s *server) sshArgs(user string) []string {
	host, port, _ := net.SplitHostPort(s.addr)
	return []string{"-F", "/dev/null", "-i", s.keys[user], "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-p", port, "skiff@" + host}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string { return "exit " + strconv.Itoa(r.code) + "\n" + r.stdout + r.stderr }

func run(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errOut.String()}
}

// ssh runs a command over SSH as user.
func (s *server) ssh(user string, args ...string) result {
	s.t.Helper()
	return run(s.t, exec.Command("ssh", append(s.sshArgs(user), args...)...))
}

// git runs git in dir with the user's key.
func (s *server) git(user, dir string, args ...string) result {
	s.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x", "GIT_SSH_COMMAND=ssh "+strings.Join(s.sshArgs(user)[:len(s.sshArgs(user))-1], " "))
	return run(s.t, cmd)
}

func (s *server) remote(app string) string {
	host, port, _ := net.SplitHostPort(s.addr)
	return "ssh://skiff@" + host + ":" + port + "/" + app
}

// repo makes a work tree with a Procfile app committed on main.
func (s *server) repo(name string) string {
	dir := filepath.Join(s.dir, "work-"+name)
	os.MkdirAll(dir, 0o755)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}} {
		if r := s.git("root", dir, args...); r.code != 0 {
			s.t.Fatal(r)
		}
	}
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: serve\n"), 0o644)
	s.git("root", dir, "add", "-A")
	if r := s.git("root", dir, "commit", "-q", "-m", "first"); r.code != 0 {
		s.t.Fatal(r)
	}
	return dir
}

func (s *server) get(host string) (int, string) {
	w := httptest.NewRecorder()
	s.router.ServeHTTP(w, httptest.NewRequest("GET", "http://"+host+"/", nil))
	return w.Code, w.Body.String()
}

// An admin's first push creates the app and deploys it; a clone gets it
// back; the pipeline's lines reach the pusher as remote: lines.
func TestPushDeploysAndClones(t *testing.T) {
	s := newServer(t)
	work := s.repo("shop")
	r := s.git("root", work, "push", s.remote("shop"), "main")
	if r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	for _, want := range []string{"Creating app shop", "remote: -----> Received shop", "remote: -----> Released v1", "remote:        http://shop." + baseDomain} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("push output lacks %q:\n%s", want, r.stderr)
		}
	}
	if code, body := s.get("shop." + baseDomain); code != 200 || body != "hello from web.1\n" {
		t.Fatalf("the pushed app answers %d %q", code, body)
	}
	clone := filepath.Join(s.dir, "clone")
	if r := s.git("root", s.dir, "clone", "-q", s.remote("shop.git"), clone); r.code != 0 {
		t.Fatalf("clone: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(clone, "Procfile")); err != nil || string(b) != "web: serve\n" {
		t.Fatalf("cloned Procfile: %q %v", b, err)
	}
	// A tag is refused with the reason, and nothing moves.
	s.git("root", work, "tag", "v1")
	if r := s.git("root", work, "push", s.remote("shop"), "v1"); r.code == 0 || !strings.Contains(r.stderr, "tags are not accepted") {
		t.Fatalf("a pushed tag: %s", r)
	}
	if r := s.git("root", s.dir, "ls-remote", s.remote("shop")); strings.Contains(r.stdout, "refs/tags") {
		t.Fatalf("the refused tag is there: %s", r.stdout)
	}
}

// Someone without access gets "not authorized" for push and fetch,
// whether the app exists or not, and a user's push never creates an app.
func TestGitAccess(t *testing.T) {
	s := newServer(t)
	work := s.repo("shop")
	if r := s.git("root", work, "push", s.remote("shop"), "main"); r.code != 0 {
		t.Fatal(r)
	}
	for _, app := range []string{"shop", "nothing-here"} {
		if r := s.git("bob", work, "push", s.remote(app), "main"); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
			t.Errorf("bob pushes %s: %s", app, r)
		}
		if r := s.git("bob", s.dir, "ls-remote", s.remote(app)); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
			t.Errorf("bob fetches %s: %s", app, r)
		}
	}
	if _, err := s.db.FindAppByName(context.Background(), "nothing-here"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("a user's push made an app: %v", err)
	}
	// Access granted: bob may push and fetch.
	if r := s.ssh("root", "access:add", "shop", "bob"); r.code != 0 {
		t.Fatal(r)
	}
	if r := s.git("bob", s.dir, "ls-remote", s.remote("shop")); r.code != 0 || !strings.Contains(r.stdout, "refs/heads/main") {
		t.Fatalf("bob fetches after access:add: %s", r)
	}
}

// Commands: the key decides who you are, the command line is split like a
// shell would (no shell runs it), and what is not a command is refused.
func TestCommandsOverSSH(t *testing.T) {
	s := newServer(t)
	if r := s.ssh("alice", "whoami"); r.code != 0 || !strings.Contains(r.stdout, "alice") {
		t.Fatalf("whoami: %s", r)
	}
	if r := s.ssh("alice", "apps:create", "shop"); r.code != 0 {
		t.Fatal(r)
	}
	if r := s.ssh("alice", "config:set shop \"GREETING='hello world'\""); r.code != 0 {
		t.Fatal(r)
	}
	if r := s.ssh("alice", "config:get", "shop", "GREETING"); r.stdout != "'hello world'\n" {
		t.Fatalf("a quoted value: %s", r)
	}
	if r := s.ssh("alice", "config:set shop 'A=1"); r.code != 2 || !strings.Contains(r.stderr, "unbalanced") {
		t.Errorf("an unbalanced quote: %s", r)
	}
	if r := s.ssh("alice", "whoami; rm -rf /"); r.code == 0 {
		t.Errorf("a shell line ran: %s", r)
	}
	// A plain `ssh skiff@host` asks for a shell: none is given; the answer
	// says how to give a command, with and without a terminal.
	_, port, _ := net.SplitHostPort(s.addr)
	hint := "ssh -p " + port + " skiff@127.0.0.1 help"
	if r := s.ssh("alice"); r.code != 2 || !strings.Contains(r.stderr, "skiff has no shell") || !strings.Contains(r.stderr, hint) || strings.Contains(r.stderr, "shell request failed") {
		t.Errorf("a shell request: %s", r)
	}
	if r := s.ssh("alice", "-tt"); r.code != 2 || !strings.Contains(r.stderr, hint+"        the commands\r\n") {
		t.Errorf("a shell request with a terminal: %s", r)
	}
	// With a terminal (ssh -t) every line a command writes ends in CR LF,
	// its errors' too, as they would from a program with a terminal
	// (admin's TestTerminalLineEnds: data arrives as it is).
	bare := regexp.MustCompile("(^|[^\r])\n")
	if r := s.ssh("alice", "-tt", "help"); r.code != 0 || !strings.Contains(r.stdout, "\r\n") || bare.MatchString(r.stdout) {
		t.Errorf("help with a terminal: %q", r.stdout)
	}
	if r := s.ssh("alice", "-tt", "config", "nosuchapp"); r.code == 0 || !strings.HasSuffix(r.stderr, "\r\n") || bare.MatchString(r.stderr) {
		t.Errorf("an error with a terminal: %q", r.stderr)
	}
	// A removed key no longer gets in.
	s.addUser("carol", false)
	if r := s.ssh("carol", "whoami"); r.code != 0 {
		t.Fatal(r)
	}
	if _, err := s.db.RemoveKey(context.Background(), "carol", ""); err != nil {
		t.Fatal(err)
	}
	if r := s.ssh("carol", "whoami"); r.code == 0 {
		t.Fatalf("a removed key got in: %s", r)
	}
}

// A push whose hook does not come through skiff's SSH server is refused:
// the hook's token proves the push.
func TestHookNeedsItsToken(t *testing.T) {
	s := newServer(t)
	err := s.srv.RunHook(context.Background(), &skiff.Hook{Name: "pre-receive", Token: "guessed", Input: ""}, io.Discard)
	if skiff.ErrorCode(err) != skiff.EUNAUTHORIZED {
		t.Fatalf("a hook with a guessed token: %v", err)
	}
	if err := s.srv.RunHook(context.Background(), &skiff.Hook{Name: "post-receive"}, io.Discard); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("another hook: %v", err)
	}
}
