package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ssh-audit (Debian's package) finds nothing weak in what the SSH server
// offers: no failure, and no warning but the two algorithms Debian 12's
// ssh-audit 2.5 does not know yet (the post-quantum hybrid key exchange
// and the strict key exchange marker that closes Terrapin).
func TestSSHAudit(t *testing.T) {
	if _, err := exec.LookPath("ssh-audit"); err != nil {
		t.Fatal("needs ssh-audit (scripts/install-deps.sh installs it)")
	}
	d := startDaemon(t)
	out, _ := exec.Command("ssh-audit", "-n", "-b", "-p", d.port(), "127.0.0.1").CombinedOutput()
	known := map[string]bool{"mlkem768x25519-sha256": true, "kex-strict-s-v00@openssh.com": true}
	lines := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "(") {
			continue
		}
		lines++
		alg, note, _ := strings.Cut(line, " -- ")
		alg = strings.TrimSpace(alg[strings.Index(alg, ")")+1:])
		switch {
		case strings.Contains(note, "[fail]"):
			t.Errorf("ssh-audit fails %s: %s", alg, note)
		case strings.Contains(note, "[warn]") && !(known[alg] && strings.Contains(note, "unknown algorithm")):
			t.Errorf("ssh-audit warns about %s: %s", alg, note)
		}
	}
	if lines < 10 || !strings.Contains(string(out), "(kex) curve25519-sha256") {
		t.Fatalf("ssh-audit did not audit the server:\n%s", out)
	}
	if t.Failed() {
		t.Logf("ssh-audit:\n%s", out)
	}
}

// The OpenSSH and git clients of Debian 12 (this machine's: every other
// test uses them) and of the current Debian release (13, OpenSSH 10, in a
// root debootstrap makes once and caches) connect, push and clone; the
// newer one with the post-quantum key exchange.
func TestCurrentClients(t *testing.T) {
	d := startDaemon(t)
	u := d.addUser("newclient", false)
	d.local("", "apps:create", "clients")
	d.local("", "access:add", "clients", "newclient")
	kex := func(out string) string {
		_, rest, _ := strings.Cut(out, "kex: algorithm: ")
		alg, _, _ := strings.Cut(rest, "\n")
		return strings.TrimSpace(alg)
	}
	r := runCmd(t, exec.Command("ssh", append(append(d.sshBase(u), "-v", "skiff@127.0.0.1", "--"), "whoami")...), "")
	if r.code != 0 || !strings.Contains(r.stdout, "newclient") || kex(r.stderr) != "curve25519-sha256" {
		t.Errorf("Debian 12's ssh: exit %d, %q, kex %q", r.code, r.stdout, kex(r.stderr))
	}

	root := debianRoot(t, "trixie", "openssh-client", "git")
	scratch, err := os.MkdirTemp(filepath.Join(root, "tmp"), "client-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	in := "/tmp/" + filepath.Base(scratch)
	key, _ := os.ReadFile(u.keyPath)
	os.WriteFile(filepath.Join(scratch, "key"), key, 0o600)
	sshCmd := "ssh -i " + in + "/key -p " + d.port() + " -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=" + in + "/known_hosts"
	r = inRoot(t, root, nil, "sh", "-c", "ssh -V 2>&1; "+sshCmd+" -v skiff@127.0.0.1 whoami")
	if r.code != 0 || !strings.Contains(r.stdout, "OpenSSH_10") || !strings.Contains(r.stdout, "newclient") || kex(r.stderr) != "mlkem768x25519-sha256" {
		t.Fatalf("Debian 13's ssh: %s\nkex %q", r, kex(r.stderr))
	}
	env := []string{"HOME=" + in, "GIT_SSH_COMMAND=" + sshCmd, "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.com", "PATH=/usr/bin:/bin"}
	remote := "ssh://skiff@127.0.0.1:" + d.port() + "/clients"
	r = inRoot(t, root, env, "sh", "-ec", `cd `+in+`; git --version; git init -q -b main src; cd src; echo hi > f; git add f; git commit -qm one
		git push -q `+remote+` main; cd ..; git clone -q `+remote+` back; cat back/f`)
	if r.code != 0 || !strings.Contains(r.stdout, "git version 2.4") || !strings.HasSuffix(strings.TrimSpace(r.stdout), "hi") {
		t.Fatalf("Debian 13's git: %s", r)
	}
}
