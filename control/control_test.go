package control_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/control"
	"github.com/skiffhq/skiff/gitserver"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
)

// The test binary doubles as a client run under another uid
// (TestPeerCredentials).
func TestMain(m *testing.M) {
	if sock := os.Getenv("SKIFF_TEST_DIAL"); sock != "" {
		code, err := control.RunCommand(sock, []string{"version"}, nil, io.Discard, io.Discard)
		if err != nil {
			os.Exit(0) // refused: the daemon hung up without an answer
		}
		fmt.Println("answered:", code, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// notifying wraps the real command runner to tell when a command ended.
type notifying struct {
	skiff.CommandRunner
	ended chan error
}

func (n notifying) RunCommand(ctx context.Context, inv *skiff.Invocation) int {
	code := n.CommandRunner.RunCommand(ctx, inv)
	n.ended <- ctx.Err()
	return code
}

type fixture struct {
	socket string
	ended  chan error
}

// newFixture serves the control socket with the real admin commands over
// a real store (and skifftest's scheduler, for logs), and gitserver's hook
// runner.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	host := skifftest.NewHost(skifftest.NewImages(), t.TempDir())
	t.Cleanup(host.Close)
	commands := admin.New(admin.Services{Apps: db, Users: db, Access: db, Events: db, Pushes: db, Releases: db, Config: db, Domains: db,
		Settings: db, Scheduler: host.Scheduler(skifftest.Config{})}, admin.Info{SSHHost: "h", Domain: "skiff.test"}, nil, log)
	hostKey, err := gitserver.LoadOrCreateHostKey(filepath.Join(dir, "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := gitserver.New(gitserver.Config{HostKey: hostKey, Users: db, Apps: db, Access: db, Log: log, HookCommand: "skiff", HooksDir: filepath.Join(dir, "hooks")})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{socket: filepath.Join(dir, "control.sock"), ended: make(chan error, 10)}
	l, err := control.Listen(f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &control.Server{Commands: notifying{commands, f.ended}, Hooks: hooks, Log: log}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fixture) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	code, err := control.RunCommand(f.socket, args, in, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	<-f.ended
	return code, out.String(), errOut.String()
}

// Commands run in the daemon as the local CLI: stdin reaches them, stdout
// and stderr come back apart, and so does the exit status.
func TestCommandRoundTrip(t *testing.T) {
	f := newFixture(t)
	if code, out, _ := f.run(t, "", "whoami"); code != 0 || !strings.Contains(out, "local:") {
		t.Fatalf("whoami: %d %q", code, out)
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop\n"
	if code, _, errOut := f.run(t, key, "keys:add", "alice", "--admin"); code != 0 {
		t.Fatalf("keys:add: %d %s", code, errOut)
	}
	if code, out, _ := f.run(t, "", "keys", "--format", "json"); code != 0 || !strings.Contains(out, `"user": "alice"`) {
		t.Fatalf("keys: %d %s", code, out)
	}
	if code, out, errOut := f.run(t, "", "frobnicate"); code != 2 || out != "" || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("an unknown command: %d %q %q", code, out, errOut)
	}
}

// Listen refuses to take the socket of a daemon that answers, replaces a
// stale one, and makes it private.
func TestListen(t *testing.T) {
	f := newFixture(t)
	if _, err := control.Listen(f.socket); err == nil || !strings.Contains(err.Error(), "another skiff serve is running") {
		t.Fatalf("a second Listen: %v", err)
	}
	stale := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers: a daemon that died
	l2, err := control.Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l2.Close()
	if fi, err := os.Stat(stale); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
}

// The hook reaches the daemon, which runs pushes only for the tokens of
// its own SSH server.
func TestHook(t *testing.T) {
	f := newFixture(t)
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	var out bytes.Buffer
	if code := control.Hook("pre-receive", strings.NewReader(""), env(nil), &out); code != 1 || !strings.Contains(out.String(), "not run by skiff's git server") {
		t.Fatalf("a hook without a token: %d %q", code, out.String())
	}
	out.Reset()
	in := strings.Repeat("0", 40) + " " + strings.Repeat("1", 40) + " refs/heads/main\n"
	if code := control.Hook("pre-receive", strings.NewReader(in), env(map[string]string{"SKIFF_PUSH_TOKEN": "guessed", "SKIFF_CONTROL_SOCKET": f.socket}), &out); code != 1 ||
		!strings.Contains(out.String(), "only runs for pushes through skiff's SSH server") {
		t.Fatalf("a guessed token: %d %q", code, out.String())
	}
	out.Reset()
	if code := control.Hook("post-update", strings.NewReader(""), env(nil), &out); code != 2 {
		t.Fatalf("another hook: %d %q", code, out.String())
	}
	out.Reset()
	big := strings.NewReader(strings.Repeat("x", 2<<20))
	if code := control.Hook("pre-receive", big, env(map[string]string{"SKIFF_PUSH_TOKEN": "t", "SKIFF_CONTROL_SOCKET": f.socket}), &out); code != 1 || !strings.Contains(out.String(), "too large") {
		t.Fatalf("too much input: %d %q", code, out.String())
	}
}

// A peer that is neither root nor the daemon's own user is refused even
// when it can open the socket.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to connect as another user")
	}
	f := newFixture(t)
	os.Chmod(f.socket, 0o666)
	for d := filepath.Dir(f.socket); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // t.TempDir's directories are private
	}
	// A copy of the test binary that the other user may run.
	bin := filepath.Join(t.TempDir(), "client")
	for d := filepath.Dir(bin); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SKIFF_TEST_DIAL="+f.socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Skipf("cannot run as nobody: %v", err)
	}
	if err != nil {
		t.Fatalf("uid 65534 was answered: %v %s", err, out)
	}
	select {
	case <-f.ended:
		t.Fatal("a command ran for uid 65534")
	default:
	}
}

// ttyRunner shows what a command that takes a terminal gets: the
// terminal's type and size, its resizes, and its input.
type ttyRunner struct{}

func (ttyRunner) RunCommand(ctx context.Context, inv *skiff.Invocation) int {
	if inv.TTY == nil {
		fmt.Fprintln(inv.Stdout, "no terminal")
		return 0
	}
	fmt.Fprintf(inv.Stdout, "%s %dx%d\n", inv.TTY.Term, inv.TTY.Width, inv.TTY.Height)
	// The input is read as it comes, as a process on a terminal does (the
	// resizes come on the same connection).
	var in bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&in, inv.Stdin); close(read) }()
	ws := <-inv.TTY.Resize
	fmt.Fprintf(inv.Stdout, "resized %dx%d\n", ws.Width, ws.Height)
	fmt.Fprintln(inv.Stderr, "to stderr")
	<-read
	inv.Stdout.Write(in.Bytes())
	return 3
}

// The local CLI on a terminal (skiff run, skiff postgres:connect) hands
// the daemon the terminal's type and size, then its resizes and input;
// skiff's own messages come apart, on stderr. Without one, a command gets
// no terminal.
func TestTerminal(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "control.sock")
	l, err := control.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &control.Server{Commands: ttyRunner{}, Log: slog.New(slog.DiscardHandler)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	resize := make(chan skiff.WindowSize, 1)
	resize <- skiff.WindowSize{Width: 100, Height: 30}
	close(resize)
	var out, errOut bytes.Buffer
	code, err := control.RunTerminal(socket, []string{"postgres:connect", "db"}, &skiff.TTY{Term: "xterm-256color", Width: 80, Height: 24, Resize: resize},
		strings.NewReader("SELECT 1;\r"), &out, &errOut)
	if want := "xterm-256color 80x24\nresized 100x30\nSELECT 1;\r"; err != nil || code != 3 || out.String() != want || errOut.String() != "to stderr\n" {
		t.Errorf("RunTerminal: %d %v %q %q, want %q", code, err, out.String(), errOut.String(), want)
	}
	out.Reset()
	if code, err := control.RunCommand(socket, []string{"postgres:connect", "db"}, nil, &out, io.Discard); err != nil || code != 0 || out.String() != "no terminal\n" {
		t.Errorf("RunCommand: %d %v %q", code, err, out.String())
	}
}
