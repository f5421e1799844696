package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// `ssh -t … run app …` gets a terminal: the process sees a tty, its
// window size and the client's terminal type (TERM), and the exit code
// comes back.
func TestRunWithTerminal(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "tty"
	if r := d.git(admin, newRepo(t, pyApp("1")), "push", d.remote(app), "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	c, err := d.dial(&gossh.ClientConfig{Auth: []gossh.AuthMethod{gossh.PublicKeys(admin.signer)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm-256color", 33, 101, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.Stdout = &out
	err = s.Run(`run tty tty; stty size; echo "TERM=$TERM"; exit 4`)
	var exit *gossh.ExitError
	if !errorAs(err, &exit) || exit.ExitStatus() != 4 {
		t.Fatalf("run with a tty: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "33 101") {
		t.Fatalf("no terminal, or the wrong size:\n%q", out.String())
	}
	if !strings.Contains(out.String(), "TERM=xterm-256color\r\n") {
		t.Fatalf("the run's TERM is not the client's terminal type:\n%q", out.String())
	}
	// The run's own terminal ends its lines; skiff adds no second CR.
	if strings.Contains(out.String(), "\r\r\n") {
		t.Fatalf("the run's lines end in CR CR LF:\n%q", out.String())
	}
}

// builds:cancel stops a running build; the push is rejected and the build
// is on record as failed.
func TestBuildCancel(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "cancel"
	repo := copyApp(t, filepath.Join("../buildpacks/testdata/apps", "go"))
	push := exec.Command("git", "push", d.remote(app), "main")
	push.Dir, push.Env = repo, gitEnv(d.dir, "ssh "+strings.Join(d.sshBase(admin), " "))
	var out bytesBuffer
	push.Stdout, push.Stderr = &out, &out
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "Go app detected") {
		if time.Now().After(deadline) {
			t.Fatalf("the build never started:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := d.ssh(admin, "", "builds:cancel", app); r.code != 0 {
		t.Fatalf("builds:cancel: %s", r)
	}
	if err := push.Wait(); err == nil {
		t.Fatalf("a canceled build deployed:\n%s", out.String())
	}
	if r := d.ssh(admin, "", "builds:info", app, "--format", "json"); !strings.Contains(r.stdout, `"status": "failed"`) {
		t.Fatalf("builds:info after cancel: %s", r)
	}
	if r := d.ssh(admin, "", "builds:cancel", app); r.code != 1 || !strings.Contains(r.stderr, "no build running") {
		t.Fatalf("builds:cancel with nothing running: %s", r)
	}
	if r := d.ssh(admin, "", "builds:purge-cache", app); r.code != 0 {
		t.Fatalf("builds:purge-cache: %s", r)
	}
}

// logs -t follows: a request made after it started shows up in it.
func TestLogsFollow(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "follow"
	if r := d.git(admin, newRepo(t, pyApp("1")), "push", d.remote(app), "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	cmd := exec.Command("ssh", append(append(d.sshBase(admin), "skiff@127.0.0.1", "--"), "logs", app, "-t", "-n", "0", "-p", "web")...)
	var out bytesBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "GET /followed") {
		if time.Now().After(deadline) {
			t.Fatalf("logs -t did not show the request:\n%s", out.String())
		}
		d.get(t, hostOf(app), "/followed")
		time.Sleep(300 * time.Millisecond)
	}
	if strings.Contains(out.String(), "skiff: Deployed") {
		t.Errorf("-p web showed platform lines:\n%s", out.String())
	}
}
