package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Someone whose access or key is removed loses what they have open within a
// second or two: a `logs -t`, a running `run`, a push being built.
func TestRevokedSessionsEnd(t *testing.T) {
	d, admin := fullDaemon(t)
	const app, pushApp = "revoke", "revokepush"
	if r := d.git(admin, newRepo(t, pyApp("1")), "push", d.remote(app), "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	if r := d.ssh(admin, "", "apps:create", pushApp); r.code != 0 {
		t.Fatal(r)
	}
	defer d.ssh(admin, "", "apps:destroy", pushApp, "--force")
	carol, dave, erin := d.addUser("carol", false), d.addUser("dave", false), d.addUser("erin", false)
	for _, grant := range [][2]string{{app, "carol"}, {app, "dave"}, {pushApp, "erin"}} {
		if r := d.ssh(admin, "", "access:add", grant[0], grant[1]); r.code != 0 {
			t.Fatal(r)
		}
	}
	start := func(u *user, args ...string) (*exec.Cmd, *bytesBuffer, chan error) {
		cmd := exec.Command("ssh", append(append(d.sshBase(u), "skiff@127.0.0.1", "--"), args...)...)
		out := new(bytesBuffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done; done <- nil })
		return cmd, out, done
	}
	waitFor := func(out *bytesBuffer, what string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), what); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never saw %q:\n%s", what, out.String())
			}
		}
	}
	ends := func(name string, done chan error, out *bytesBuffer, why string) {
		t.Helper()
		start := time.Now()
		select {
		case err := <-done:
			done <- err
			if err == nil {
				t.Errorf("%s ended with success", name)
			}
			if !strings.Contains(out.String(), why) {
				t.Errorf("%s did not say why (%q):\n%s", name, why, out.String())
			}
			t.Logf("%s ended %v after the removal", name, time.Since(start).Round(10*time.Millisecond))
		case <-time.After(3 * time.Second):
			t.Errorf("%s still open 3s after the removal:\n%s", name, out.String())
		}
	}

	// carol follows the logs; her access goes.
	_, logsOut, logsDone := start(carol, "logs", app, "-t", "-n", "1")
	time.Sleep(time.Second) // logs is following

	if r := d.ssh(admin, "", "access:remove", app, "carol"); r.code != 0 {
		t.Fatal(r)
	}
	ends("logs -t", logsDone, logsOut, "access to this app was removed")

	// dave runs a one-off; his key goes.
	_, runOut, runDone := start(dave, "run", app, "echo started; exec sleep 300")
	waitFor(runOut, "started")
	if r := d.ssh(admin, "", "keys:remove", "dave"); r.code != 0 {
		t.Fatal(r)
	}
	ends("run", runDone, runOut, "key of this session was removed")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := exec.Command("runc", "--root", "/run/"+hostResources(0).prefix+"/runc", "list", "-q").Output()
		if !strings.Contains(string(out), "run-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the one-off still runs after its session ended: %s", out)
		}
	}

	// erin pushes; her access goes while the app builds.
	repo := copyApp(t, filepath.Join("../buildpacks/testdata/apps", "go"))
	push := exec.Command("git", "push", d.remote(pushApp), "main")
	push.Dir, push.Env = repo, gitEnv(d.dir, "ssh "+strings.Join(d.sshBase(erin), " "))
	pushOut := new(bytesBuffer)
	push.Stdout, push.Stderr = pushOut, pushOut
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	pushDone := make(chan error, 1)
	go func() { pushDone <- push.Wait() }()
	waitFor(pushOut, "Go app detected")
	if r := d.ssh(admin, "", "access:remove", pushApp, "erin"); r.code != 0 {
		t.Fatal(r)
	}
	ends("push", pushDone, pushOut, "access to this app was removed")
	if r := d.ssh(admin, "", "releases", pushApp, "--format", "json"); strings.Contains(r.stdout, `"version"`) {
		t.Errorf("the revoked push was released: %s", r.stdout)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := d.ssh(admin, "", "builds:cancel", pushApp)
		if r.code == 1 && strings.Contains(r.stderr, "no build running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a build still runs after its push was revoked: %s", r)
		}
	}
}
