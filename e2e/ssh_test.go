package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// offerOnly advertises someone else's public key but cannot sign with it:
// the client offers the key (the server says "acceptable"), then fails to
// sign and moves on to its own key.
type offerOnly struct{ pub gossh.PublicKey }

func (o offerOnly) PublicKey() gossh.PublicKey { return o.pub }
func (o offerOnly) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	return nil, errors.New("cannot sign: not my key")
}

// Regression test for the offered-key confusion (CVE-2024-45337,
// gliderlabs/ssh #242): the user is the key that signed, not one offered.
func TestOfferedKeyConfusion(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	victim := d.addUser("victim", true)
	attacker := d.addUser("attacker", false)
	if r := d.ssh(victim, "", "apps:create", "vault"); r.code != 0 {
		t.Fatal(r)
	}
	for name, offers := range map[string][]gossh.PublicKey{
		"victim offered, attacker signs":            {victim.signer.PublicKey()},
		"attacker, victim offered, attacker signs":  {attacker.signer.PublicKey(), victim.signer.PublicKey()},
		"victim offered twice, then attacker signs": {victim.signer.PublicKey(), victim.signer.PublicKey()},
	} {
		t.Run(name, func(t *testing.T) {
			i := 0
			cfg := &gossh.ClientConfig{
				Auth: []gossh.AuthMethod{gossh.PublicKeys(offerOnly{offers[0]})},
				AuthCallback: func(*gossh.ClientAuthContext) (gossh.AuthMethod, error) {
					i++
					switch {
					case i < len(offers):
						return gossh.PublicKeys(offerOnly{offers[i]}), nil
					case i == len(offers):
						return gossh.PublicKeys(attacker.signer), nil
					}
					return nil, nil
				},
			}
			c, err := d.dial(cfg)
			if err != nil {
				t.Fatalf("attacker could not log in with their own key: %v", err)
			}
			defer c.Close()
			if r := execOn(t, c, "whoami"); r.stdout != "attacker\n" {
				t.Fatalf("whoami = %q, want attacker", r.stdout)
			}
			for _, cmd := range []string{"apps:info vault", "keys:list", "apps:destroy vault --force"} {
				if r := execOn(t, c, cmd); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
					t.Fatalf("%s as attacker: %s", cmd, r)
				}
			}
		})
	}
	if r := d.ssh(victim, "", "apps:info", "vault"); r.code != 0 {
		t.Fatalf("victim's app was harmed: %s", r)
	}
}

// A user who may not use an app hears exactly what they would hear for an
// app that does not exist, from every verb, and nothing changes.
func TestCrossAppAccessMatrix(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	alice := d.addUser("alice", false)
	bob := d.addUser("bob", false)
	d.addUser("root", true)
	if r := d.ssh(alice, "", "apps:create", "alpha"); r.code != 0 {
		t.Fatal(r)
	}
	repo := newRepo(t, nil)
	if r := d.git(alice, repo, "push", d.remote("alpha"), "main"); r.code != 0 {
		t.Fatal(r)
	}
	stateBefore := d.local("", "events", "-n", "10000", "--format", "json").stdout

	verbs := [][]string{
		{"apps:info", "%s"}, {"apps:rename", "%s", "stolen"}, {"apps:destroy", "%s", "--force"},
		{"access:list", "%s"}, {"access:add", "%s", "bob"}, {"access:remove", "%s", "alice"},
		{"git:set", "%s", "deploy-branch", "x"}, {"git:report", "%s"}, {"events", "%s"},
	}
	for _, verb := range verbs {
		answers := map[string]result{}
		for _, app := range []string{"alpha", "ghost"} {
			args := make([]string, len(verb))
			for i, a := range verb {
				args[i] = strings.ReplaceAll(a, "%s", app)
			}
			answers[app] = d.ssh(bob, "", args...)
		}
		if answers["alpha"] != answers["ghost"] || answers["alpha"].code != 1 || !strings.Contains(answers["alpha"].stderr, "not authorized") {
			t.Errorf("%s: other's app %s\nmissing app %s", verb[0], answers["alpha"], answers["ghost"])
		}
	}
	// git: push and fetch alike.
	for _, args := range [][]string{{"push", "%s", "main"}, {"fetch", "%s"}} {
		var outs []string
		for _, app := range []string{"alpha", "ghost"} {
			a := append([]string(nil), args...)
			a[1] = d.remote(app)
			r := d.git(bob, repo, a...)
			if r.code == 0 {
				t.Fatalf("git %s %s as bob succeeded", args[0], app)
			}
			outs = append(outs, strings.ReplaceAll(r.stderr, app, "APP"))
		}
		if outs[0] != outs[1] || !strings.Contains(outs[0], "not authorized") {
			t.Errorf("git %s answers differ:\n%s\n%s", args[0], outs[0], outs[1])
		}
	}
	// A non-admin's push to an unknown app creates nothing.
	if r := d.ssh(bob, "", "apps:list", "--format", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("bob sees apps: %s", r)
	}
	if after := d.local("", "events", "-n", "10000", "--format", "json").stdout; after != stateBefore {
		t.Fatalf("refused commands changed state:\n%s", after)
	}
	// After a grant, bob may push; global commands stay admin-only.
	if r := d.ssh(alice, "", "access:add", "alpha", "bob"); r.code != 0 {
		t.Fatal(r)
	}
	commit(t, repo, "b.txt", "b", "bob's change")
	if r := d.git(bob, repo, "push", d.remote("alpha"), "main"); r.code != 0 {
		t.Fatalf("bob's push after access:add: %s", r)
	}
	if r := d.ssh(bob, "", "apps:destroy", "alpha", "--force"); r.code != 1 {
		t.Fatalf("a collaborator destroyed the owner's app: %s", r)
	}
	if r := d.ssh(bob, "", "keys:add", "mallory"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Fatalf("keys:add by a non-admin: %s", r)
	}
}

// Bad app names get a clear error and create nothing, whatever the caller.
func TestAppNameMatrix(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	root := d.addUser("root", true)
	c, err := d.dial(&gossh.ClientConfig{Auth: []gossh.AuthMethod{gossh.PublicKeys(root.signer)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, line := range []string{
		`apps:create '../x'`, `apps:create ..`, `apps:create 'a/b'`, `apps:create 'a;id'`, `apps:create '$(id)'`,
		"apps:create '`id`'", `apps:create 'a b'`, `apps:create -- -rf`, `apps:create A`, `apps:create test_app`,
		`apps:create app:latest`, `apps:create app.git`, "apps:create 'a\nb'", `apps:create аpp`, `apps:create 'app🚀'`,
		`apps:create ` + strings.Repeat("a", 300), `apps:create app-`, `apps:create ''`, `apps:create skiff`,
	} {
		r := execOn(t, c, line)
		if r.code != 1 || (!strings.Contains(r.stderr, "invalid app name") && !strings.Contains(r.stderr, "is reserved")) {
			t.Errorf("%q: %s", line, r)
		}
		if len(r.stderr) > 400 {
			t.Errorf("%q: a %d-byte error", line, len(r.stderr))
		}
	}
	// Usage errors exit 2: a flag that looks like a name, unbalanced quotes.
	for _, line := range []string{`apps:create -rf`, `apps:create "web`, `apps:create`, `apps:create a b`, `nosuch:command`} {
		if r := execOn(t, c, line); r.code != 2 {
			t.Errorf("%q: want exit 2, got %s", line, r)
		}
	}
	if r := execOn(t, c, "apps:list --format json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("bad names created apps: %s", r)
	}
	entries, _ := os.ReadDir(filepath.Join(d.data, "repos"))
	for _, e := range entries {
		if e.Name() != ".home" {
			t.Errorf("bad names left %s in repos/", e.Name())
		}
	}
}

// Shells, subsystems, forwarding and env are refused or ignored; only exec
// runs, and every error ends with a non-zero exit status.
func TestSessionRequestsRefused(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	root := d.addUser("root", true)
	c, err := d.dial(&gossh.ClientConfig{Auth: []gossh.AuthMethod{gossh.PublicKeys(root.signer)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A shell request runs no shell: it is answered with how to give a
	// command, and exit status 2; with a terminal too.
	for _, pty := range []bool{false, true} {
		s, _ := c.NewSession()
		if pty {
			if err := s.RequestPty("xterm", 40, 80, gossh.TerminalModes{}); err != nil {
				t.Fatal("pty request refused (run needs it):", err)
			}
		}
		var out strings.Builder
		s.Stdout, s.Stderr = &out, &out
		if err := s.Shell(); err != nil {
			t.Fatalf("shell request (pty %v): %v", pty, err)
		}
		var exit *gossh.ExitError
		if err := s.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 2 || !strings.Contains(out.String(), "skiff has no shell") || !strings.Contains(out.String(), " help ") {
			t.Errorf("shell (pty %v): %v\n%s", pty, err, out.String())
		}
		s.Close()
	}

	s, _ := c.NewSession()
	if err := s.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	s.Close()

	s, _ = c.NewSession()
	if err := s.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
		t.Error("env LD_PRELOAD accepted")
	}
	if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Error("agent forwarding accepted")
	}
	s.Close()

	if _, err := c.Dial("tcp", d.addr.HTTP); err == nil {
		t.Error("direct-tcpip (ssh -L) accepted")
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("tcpip-forward (ssh -R) accepted")
	}
	if r := execOn(t, c, ""); r.code == 0 {
		t.Errorf("empty command: %s", r)
	}
	if r := execOn(t, c, "whoami"); r.stdout != "root (admin)\n" {
		t.Fatalf("the connection no longer works: %s", r)
	}
}

// Only public keys authenticate; unknown and removed keys are refused.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.addUser("root", true)
	alice := d.addUser("alice", false)
	if _, err := d.dial(&gossh.ClientConfig{Auth: []gossh.AuthMethod{gossh.Password("hunter2"),
		gossh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil })}}); err == nil {
		t.Fatal("password or keyboard-interactive login accepted")
	}
	stranger := newKey(t, d.dir, "stranger")
	if r := d.ssh(stranger, "", "whoami"); r.code != 255 || !strings.Contains(r.stderr, "Permission denied (publickey)") {
		t.Fatalf("unknown key: %s", r)
	}
	if r := d.ssh(alice, "", "whoami"); r.stdout != "alice\n" {
		t.Fatal(r)
	}
	if r := d.local("", "keys:remove", "alice"); r.code != 0 {
		t.Fatal(r)
	}
	if r := d.ssh(alice, "", "whoami"); r.code != 255 {
		t.Fatalf("removed key still logs in: %s", r)
	}
}

// A connection that does not authenticate in time is closed.
func TestPreAuthTimeout(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "--ssh-preauth-timeout", "1s")
	conn, err := net.Dial("tcp", d.addr.SSH)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	banner, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-skiff") {
		t.Fatalf("banner %q, %v", banner, err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.Copy(io.Discard, conn)
	if err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("idle pre-auth connection not closed in time: %v after %v", err, time.Since(start))
	}
}

// An authenticated connection that goes quiet is closed after the idle
// timeout (here a command waits for stdin that never comes).
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "--ssh-idle-timeout", "1s")
	root := d.addUser("root", true)
	c, err := d.dial(&gossh.ClientConfig{Auth: []gossh.AuthMethod{gossh.PublicKeys(root.signer)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := s.StdinPipe() // held open, never written
	defer stdin.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run("keys:add somebody") }()
	select {
	case <-done:
		if time.Since(start) < 900*time.Millisecond {
			t.Fatalf("closed after %v, before the idle timeout", time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle connection still open after 10s with a 1s idle timeout")
	}
}

// The hook reaches the daemon only with a live push's token: skiff's, and
// skiff-hook's (the one git runs when it is beside skiff, as here as root).
func TestHookNeedsPushToken(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	hooks := []string{skiffBin}
	if hook := filepath.Join(filepath.Dir(skiffBin), "skiff-hook"); os.Geteuid() == 0 {
		hooks = append(hooks, hook)
	}
	for _, prog := range hooks {
		cmd := exec.Command(prog, "hook", "pre-receive")
		cmd.Env = []string{"SKIFF_PUSH_TOKEN=" + strings.Repeat("ab", 32), "SKIFF_CONTROL_SOCKET=" + filepath.Join(d.data, "control.sock")}
		r := runCmd(t, cmd, strings.Repeat("0", 40)+" "+strings.Repeat("1", 40)+" refs/heads/main\n")
		if r.code != 1 || !strings.Contains(r.stderr, "only runs for pushes through skiff's SSH server") {
			t.Fatalf("%s with a forged token: %s", prog, r)
		}
		cmd = exec.Command(prog, "hook", "pre-receive")
		cmd.Env = []string{}
		if r := runCmd(t, cmd, ""); r.code != 1 {
			t.Fatalf("%s outside a push: %s", prog, r)
		}
	}
}

// One address cannot hold more than a few dozen unauthenticated
// connections; once they go, logging in works again.
func TestPreAuthCap(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	root := d.addUser("root", true)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 32 {
		c, err := net.Dial("tcp", d.addr.SSH)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("connection %d got no banner: %v", len(conns), err)
		}
	}
	over, err := net.Dial("tcp", d.addr.SSH)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(over).ReadString('\n'); err == nil {
		t.Fatalf("the 33rd unauthenticated connection got %q", line)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := d.ssh(root, "", "whoami"); r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no login after the unauthenticated connections closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
