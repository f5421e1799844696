// Package e2e drives a real skiff daemon (the binary, started as a process
// on 127.0.0.1 with port 0) with the real OpenSSH and git clients and with
// x/crypto SSH clients: the way users and attackers reach it.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/skiffhq/skiff/internal/e2etest"
	"github.com/skiffhq/skiff/internal/testguard"
)

var skiffBin string

func TestMain(m *testing.M) {
	testguard.Main()
	if bin := os.Getenv("SKIFF_E2E_BIN"); bin != "" {
		// Run by a test of this package (guard_test.go): its parent's
		// binaries, and a guard of its own.
		skiffBin = bin
		if err := testguard.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: the guard did not start: %v\n", err)
		}
		code := m.Run()
		testguard.Done()
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "skiff-e2e-bin")
	if err != nil {
		panic(err)
	}
	// As root the tests also build and run apps: skiff needs the lifecycle
	// embedded and the buildpack binary beside it, as `make build` makes.
	if skiffBin, err = e2etest.Build(dir, os.Geteuid() == 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, tool := range []string{"git", "ssh"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e tests need %s on PATH (apt-get install git openssh-client)\n", tool)
			os.Exit(1)
		}
	}
	// What the tests leave on the host is cleaned up even if this binary
	// dies without doing it (internal/testguard, guard_test.go).
	if err := testguard.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the guard did not start: %v\n", err)
	}
	testguard.Remove(dir)
	code := m.Run()
	fullStop()
	os.RemoveAll(dir)
	testguard.Done()
	os.Exit(code)
}

type ready = e2etest.Ready

// daemon is a running `skiff serve`.
type daemon struct {
	t    *testing.T
	dir  string // scratch directory of the test
	data string // --data
	cmd  *exec.Cmd
	log  *bytesBuffer
	addr ready

	exited  chan error // receives the daemon process's exit
	cleanup bool       // a stop is registered with the test
	// sockets, when set, are passed to the daemon as systemd's socket
	// activation does (fds 3…, LISTEN_FDS, LISTEN_FDNAMES ssh:http:https).
	sockets []*os.File
}

// startDaemon starts a daemon that receives and records pushes but builds
// and runs nothing (--git-only): the SSH, git and command layers.
func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: t.TempDir(), log: new(bytesBuffer)}
	d.data = filepath.Join(d.dir, "data")
	d.start(append([]string{"--git-only"}, args...)...)
	return d
}

func (d *daemon) start(args ...string) {
	d.t.Helper()
	d.startArgs(e2etest.ServeArgs(d.data, args...))
}

// startArgs starts skiff with exactly these arguments.
func (d *daemon) startArgs(all []string) {
	t := d.t
	t.Helper()
	d.cmd = exec.Command(skiffBin, all...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if d.sockets != nil {
		// LISTEN_PID must be the daemon's own pid: sh exports its pid and
		// execs skiff, which keeps it.
		d.cmd = exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, skiffBin}, all...)...)
		d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
		d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("LISTEN_FDS=%d", len(d.sockets)), "LISTEN_FDNAMES=ssh:http:https"}
		d.cmd.ExtraFiles = d.sockets
	}
	os.Remove(filepath.Join(d.data, "ready.json"))
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	guardDaemon(d.cmd, d.data)
	exited, gone := make(chan error, 1), make(chan struct{})
	d.exited = exited
	go func() { exited <- d.cmd.Wait(); close(gone) }()
	if !d.cleanup {
		d.cleanup = true
		t.Cleanup(func() {
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
				t.Error("daemon did not stop within 30s of SIGTERM")
			}
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.log.String())
			}
		})
	}
	addr, err := e2etest.WaitReady(d.data, 60*time.Second, gone)
	if err == e2etest.ErrExited {
		t.Fatalf("daemon exited: %v\n%s", <-exited, d.log.String())
	} else if err != nil {
		t.Fatalf("%v\n%s", err, d.log.String())
	}
	d.addr = addr
}

// result is what a command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

func runCmd(t *testing.T, cmd *exec.Cmd, stdin string) result {
	t.Helper()
	r, err := e2etest.Run(cmd, stdin)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
}

// local runs `skiff --data DIR args…` on the server, as root.
func (d *daemon) local(stdin string, args ...string) result {
	d.t.Helper()
	cmd := exec.Command(skiffBin, append([]string{"--data", d.data}, args...)...)
	return runCmd(d.t, cmd, stdin)
}

// user is a registered SSH identity with its key on disk.
type user struct {
	name    string
	keyPath string
	signer  gossh.Signer
}

func newKey(t *testing.T, dir, name string) *user {
	t.Helper()
	return newKeyAt(dir, name)
}

// newKeyAt writes a new ed25519 key pair, name.key and name.key.pub.
func newKeyAt(dir, name string) *user {
	k, err := e2etest.NewKey(dir, name)
	if err != nil {
		panic(err)
	}
	return &user{name: name, keyPath: k.Path, signer: k.Signer}
}

func loadSigner(t *testing.T, path string) gossh.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (u *user) authorizedKey() string {
	return e2etest.AuthorizedKey(u.signer) + " " + u.name + "@test"
}

// addUser makes a key and registers it with the local CLI.
func (d *daemon) addUser(name string, admin bool) *user {
	d.t.Helper()
	u := newKey(d.t, d.dir, name)
	args := []string{"keys:add", name}
	if admin {
		args = append(args, "--admin")
	}
	if r := d.local(u.authorizedKey()+"\n", args...); r.code != 0 {
		d.t.Fatalf("keys:add %s: %s", name, r)
	}
	return u
}

func (d *daemon) port() string {
	_, port, _ := net.SplitHostPort(d.addr.SSH)
	return port
}

func (d *daemon) sshBase(u *user) []string {
	return e2etest.SSHOptions(u.keyPath, d.port(), filepath.Join(d.dir, "known_hosts"))
}

// ssh runs a command over SSH with the real OpenSSH client.
func (d *daemon) ssh(u *user, stdin string, args ...string) result {
	d.t.Helper()
	cmd := exec.Command("ssh", append(append(d.sshBase(u), "skiff@127.0.0.1", "--"), args...)...)
	return runCmd(d.t, cmd, stdin)
}

// git runs git in dir as the user, over skiff's SSH server.
func (d *daemon) git(u *user, dir string, args ...string) result {
	d.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(d.dir, "ssh "+strings.Join(d.sshBase(u), " "))
	return runCmd(d.t, cmd, "")
}

func (d *daemon) remote(app string) string {
	return "ssh://skiff@127.0.0.1:" + d.port() + "/" + app
}

var gitEnv = e2etest.GitEnv

// newRepo makes a work tree with one commit on main (of files, or an
// index.html) and returns its path.
func newRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	if files == nil {
		files = map[string]string{"index.html": "<h1>hello</h1>\n"}
	}
	return e2etest.Repo(t, files)
}

// commit adds a file and commits it in a work tree.
func commit(t *testing.T, dir, file, body, msg string) {
	t.Helper()
	e2etest.Commit(t, dir, map[string]string{file: body}, msg)
}

// revParse returns the commit a ref names in a work tree.
func revParse(t *testing.T, dir, ref string) string {
	t.Helper()
	cmd := exec.Command("git", "rev-parse", ref)
	cmd.Dir, cmd.Env = dir, gitEnv(dir, "false")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rev-parse %s: %v", ref, err)
	}
	return strings.TrimSpace(string(out))
}

// dial opens an x/crypto SSH client with the given config.
func (d *daemon) dial(cfg *gossh.ClientConfig) (*gossh.Client, error) {
	cfg.User = "skiff"
	cfg.HostKeyCallback = gossh.InsecureIgnoreHostKey()
	cfg.Timeout = 10 * time.Second
	return gossh.Dial("tcp", d.addr.SSH, cfg)
}

// exec runs one command on an x/crypto client.
func execOn(t *testing.T, c *gossh.Client, command string) result {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(command)
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *gossh.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitStatus()
	} else if err != nil {
		t.Fatalf("run %q: %v", command, err)
	}
	return r
}

//nolint:unused // for the e2e tests of add-ons (issue 11), landing next
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func execGit(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, gitEnv(dir, "false")
	return cmd
}

func execSkiff(args ...string) *exec.Cmd { return exec.Command(skiffBin, args...) }

// kill9 kills the daemon the hard way and waits until it is gone.
func (d *daemon) kill9() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.exited <- nil // for the test's cleanup
}

func errorAs(err error, target any) bool { return errors.As(err, target) }
