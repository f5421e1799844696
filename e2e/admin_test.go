package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// The local CLI and SSH share one command table: the lifecycle of an app,
// JSON on every list and report, usage errors with exit 2.
func TestAppLifecycle(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	alice := d.addUser("alice", false)
	d.addUser("bob", false)

	r := d.ssh(alice, "", "apps:create", "shop")
	// The router is not on port 80 here: the app's URL names its port.
	if r.code != 0 || !regexp.MustCompile(`http://shop\.skiff\.test:\d+ \| ssh://skiff@skiff\.test:`).MatchString(r.stdout) {
		t.Fatalf("apps:create: %s", r)
	}
	if r := d.ssh(alice, "", "apps:create", "shop"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("duplicate create: %s", r)
	}
	var info map[string]any
	r = d.ssh(alice, "", "apps:info", "shop", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info["owner"] != "alice" || info["deploy_branch"] != "main" {
		t.Fatalf("apps:info json: %v %s", err, r)
	}
	id := info["id"].(string)
	if _, err := os.Stat(filepath.Join(d.data, "repos", id+".git", "HEAD")); err != nil {
		t.Fatalf("repository not keyed by app id: %v", err)
	}

	if r := d.ssh(alice, "", "access:add", "shop", "bob"); r.code != 0 {
		t.Fatal(r)
	}
	if r := d.ssh(alice, "", "access", "shop"); !strings.Contains(r.stdout, "bob") || !strings.Contains(r.stdout, "alice") {
		t.Fatalf("access: %s", r)
	}
	if r := d.ssh(alice, "", "apps:rename", "shop", "store"); r.code != 0 {
		t.Fatal(r)
	}
	r = d.ssh(alice, "", "apps:info", "store", "--format", "json")
	if !strings.Contains(r.stdout, id) {
		t.Fatalf("rename changed the id: %s", r)
	}
	if r := d.ssh(alice, "", "apps:destroy", "store"); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("destroy without --force: %s", r)
	}
	if r := d.ssh(alice, "", "apps:destroy", "store", "--confirm", "store"); r.code != 0 {
		t.Fatalf("destroy --confirm: %s", r)
	}
	if _, err := os.Stat(filepath.Join(d.data, "repos", id+".git")); !os.IsNotExist(err) {
		t.Fatalf("repository left after destroy: %v", err)
	}
	// A new app of the same name starts empty, with a new id.
	if r := d.ssh(alice, "", "apps:create", "store"); r.code != 0 {
		t.Fatal(r)
	}
	if r := d.ssh(alice, "", "apps:info", "store", "--format", "json"); strings.Contains(r.stdout, id) {
		t.Fatal("a recreated app reused the old id")
	}

	// Every state change is in the audit trail, with who did it.
	var events []map[string]any
	r = d.local("", "events", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &events); err != nil {
		t.Fatal(err, r)
	}
	var got []string
	for _, e := range events {
		got = append(got, e["action"].(string)+" by "+e["actor"].(string))
	}
	for _, want := range []string{"apps:create by alice", "access:add by alice", "apps:rename by alice", "apps:destroy by alice", "keys:add by local:root"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("events lack %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

func TestListsTakeJSON(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	root := d.addUser("root", true)
	d.ssh(root, "", "apps:create", "one")
	for _, args := range [][]string{
		{"apps:list"}, {"apps"}, {"apps:info", "one"}, {"access:list", "one"}, {"keys:list"}, {"events"}, {"events", "one"},
		{"git:report", "one"}, {"whoami"}, {"version"},
	} {
		r := d.ssh(root, "", append(args, "--format", "json")...)
		if r.code != 0 || !json.Valid([]byte(r.stdout)) {
			t.Errorf("%v --format json: %s", args, r)
		}
	}
	if r := d.ssh(root, "", "apps:create", "two", "--format", "json"); r.code != 2 {
		t.Errorf("--format on a command that prints no data: %s", r)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	root := d.addUser("root", true)
	user := d.addUser("user", false)
	r := d.ssh(root, "", "help")
	for _, want := range []string{"apps:create <app>", "keys:add <user>", "access:add <app> <user>", "events"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if r := d.ssh(user, "", "help"); strings.Contains(r.stdout, "keys:add") {
		t.Error("help shows admin commands to a user")
	}
	if r := d.ssh(root, "", "help", "apps:destroy"); !strings.Contains(r.stdout, "--force") || r.code != 0 {
		t.Errorf("help apps:destroy: %s", r)
	}
	if r := d.ssh(root, "", "apps:destroy", "--help"); !strings.Contains(r.stdout, "Usage: skiff apps:destroy") {
		t.Errorf("apps:destroy --help: %s", r)
	}
	if r := d.ssh(root, "", "help", "apps"); !strings.Contains(r.stdout, "apps:rename") || strings.Contains(r.stdout, "keys:add") {
		t.Errorf("help apps: %s", r)
	}
	if r := d.local("", "help"); r.code != 0 || !strings.Contains(r.stdout, "keys:add") {
		t.Errorf("local help: %s", r)
	}
}

func TestKeysCommands(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	for _, tc := range []struct{ stdin, want string }{
		{"", "no public key on stdin"},
		{"not a key\n", "line 1 is not an SSH public key"},
		{"ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAI3h6qgtgIkAfJrZKcZz6Y5MApOFXxhkcmP7HZNdvKdE9jFEmo2jJsKvZJuWxZPg6XfLbMIHjvtVkSJfPQgVfZgkJU+dUpW0xfl/Hm35HG7Orc4tQLqkH9KFZbrJjgaTXo6H+nI8gTfBPxtJTLG+kLTeyMHd+/8mQqA4hzDCiKaQ test\n", "DSA key, which is too weak"},
		{"command=\"ls\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n", "authorized_keys options"},
	} {
		if r := d.local(tc.stdin, "keys:add", "alice"); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keys:add with %q: want %q, got %s", tc.stdin[:min(20, len(tc.stdin))], tc.want, r)
		}
	}
	a := newKey(t, d.dir, "a")
	b := newKey(t, d.dir, "b")
	if r := d.local(a.authorizedKey()+"\n\n# comment\n"+b.authorizedKey()+"\n", "keys:add", "alice", "--admin"); r.code != 0 || strings.Count(r.stderr, "Added key") != 2 {
		t.Fatalf("two keys at once: %s", r)
	}
	if r := d.local(a.authorizedKey(), "keys:add", "mallory"); r.code != 1 || !strings.Contains(r.stderr, "already registered") {
		t.Fatalf("one key for two users: %s", r)
	}
	// All or nothing: a new key before a registered one is not kept either.
	c := newKey(t, d.dir, "c")
	if r := d.local(c.authorizedKey()+"\n"+b.authorizedKey()+"\n", "keys:add", "bob"); r.code != 1 || !strings.Contains(r.stderr, "no key was added") {
		t.Fatalf("a new and a registered key: %s", r)
	}
	if r := d.ssh(a, "", "keys"); strings.Contains(r.stdout, "bob") {
		t.Fatalf("keys:add that failed kept a key: %s", r.stdout)
	}
	if r := d.ssh(c, "", "whoami"); r.code == 0 {
		t.Fatalf("the key of a failed keys:add authenticates: %s", r)
	}
	if r := d.local("", "keys:remove", "alice"); r.code != 1 || !strings.Contains(r.stderr, "last admin") {
		t.Fatalf("removing the last admin: %s", r)
	}
	if r := d.ssh(a, "", "keys"); !strings.Contains(r.stdout, "alice  admin") {
		t.Fatalf("keys: %s", r)
	}
}

// The data directory keeps secrets private, and a second daemon cannot
// take over a running one's directory.
func TestDataDirectory(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	for _, name := range []string{"skiff.db", "ssh_host_ed25519_key", "control.sock"} {
		st, err := os.Stat(filepath.Join(d.data, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", name, st.Mode().Perm())
		}
	}
	hostKey, _ := os.ReadFile(filepath.Join(d.data, "ssh_host_ed25519_key"))
	second := runCmd(t, execSkiff("serve", "--data", d.data, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"), "")
	if second.code == 0 || !strings.Contains(second.stderr, "another skiff serve is running") {
		t.Fatalf("second daemon on the same data: %s", second)
	}
	if again, _ := os.ReadFile(filepath.Join(d.data, "ssh_host_ed25519_key")); string(again) != string(hostKey) {
		t.Fatal("host key changed")
	}
	// Without a daemon, the local CLI says what is wrong.
	r := runCmd(t, execSkiff("--data", t.TempDir(), "apps:list"), "")
	if r.code != 1 || !strings.Contains(r.stderr, "is `skiff serve` running") {
		t.Fatalf("CLI without a daemon: %s", r)
	}
}

// backup streams a database that opens on its own with the same state.
func TestBackupCommand(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	root := d.addUser("root", true)
	user := d.addUser("user", false)
	d.ssh(root, "", "apps:create", "saved")
	r := d.ssh(root, "", "backup")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "SQLite format 3\x00") {
		t.Fatalf("backup: exit %d, %d bytes, stderr %s", r.code, len(r.stdout), r.stderr)
	}
	if r := d.ssh(user, "", "backup"); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Fatalf("backup by a user: %s", r)
	}
	// A daemon started on the restored file has the app.
	restored := startDaemon(t)
	restored.cmd.Process.Signal(syscall.SIGTERM)
	<-restored.exited
	restored.exited <- nil
	if err := os.WriteFile(filepath.Join(restored.data, "skiff.db"), []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(restored.data, "skiff.db-wal"))
	os.Remove(filepath.Join(restored.data, "skiff.db-shm"))
	restored.start("--git-only")
	if r := restored.local("", "apps"); !strings.Contains(r.stdout, "saved") {
		t.Fatalf("restored daemon: %s", r)
	}
}

// With no --domain the daemon starts, and apps answer at <app>.localhost:
// what `make run` does on a fresh machine.
func TestDefaultDomain(t *testing.T) {
	t.Parallel()
	d := &daemon{t: t, dir: t.TempDir(), log: new(bytesBuffer)}
	d.data = filepath.Join(d.dir, "data")
	d.cmd = nil
	d.startArgs([]string{"serve", "--git-only", "--data", d.data, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"})
	root := d.addUser("root", true)
	if r := d.ssh(root, "", "apps:create", "web"); r.code != 0 || !strings.Contains(r.stdout, "http://web.localhost") {
		t.Fatalf("apps:create with the default domain: %s", r)
	}
}
