package e2e

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An admin's first push creates the app; the pusher sees the pipeline's
// lines as "remote:"; the app can be cloned back, over protocol v0 and v2.
func TestPushCreatesAppAndClones(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	alice := d.addUser("alice", true)
	repo := newRepo(t, nil)
	d.git(alice, repo, "remote", "add", "skiff", d.remote("myapp"))

	r := d.git(alice, repo, "push", "skiff", "main")
	if r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	head := revParse(t, repo, "HEAD")
	for _, want := range []string{"remote: -----> Received myapp " + head[:7] + " on main from alice", "remote: -----> Recorded push #1 of myapp", "* [new branch]      main -> main"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("push output lacks %q:\n%s", want, r.stderr)
		}
	}
	list := d.ssh(alice, "", "apps:list", "--format", "json")
	if list.code != 0 || !strings.Contains(list.stdout, `"name": "myapp"`) {
		t.Fatalf("apps:list: %s", list)
	}
	for _, version := range []string{"0", "2"} {
		clone := filepath.Join(t.TempDir(), "clone")
		r := d.git(alice, t.TempDir(), "-c", "protocol.version="+version, "clone", "-q", d.remote("myapp.git"), clone)
		if r.code != 0 {
			t.Fatalf("clone over protocol v%s: %s", version, r)
		}
		if got := revParse(t, clone, "HEAD"); got != head {
			t.Fatalf("clone v%s HEAD %s, want %s", version, got, head)
		}
	}
	// The push is on record and in the audit trail.
	info := d.ssh(alice, "", "apps:info", "myapp", "--format", "json")
	if !strings.Contains(info.stdout, head) {
		t.Errorf("apps:info lacks the pushed commit: %s", info)
	}
	events := d.local("", "events", "myapp")
	if !strings.Contains(events.stdout, "push") || !strings.Contains(events.stdout, "apps:create") {
		t.Errorf("events lack the push: %s", events)
	}
}

// myapp, myapp.git, /myapp and ~/myapp name the same app.
func TestRemotePathForms(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	alice := d.addUser("alice", true)
	if r := d.ssh(alice, "", "apps:create", "myapp"); r.code != 0 {
		t.Fatal(r)
	}
	repo := newRepo(t, nil)
	port := d.port()
	for i, url := range []string{
		"ssh://skiff@127.0.0.1:" + port + "/myapp",
		"ssh://skiff@127.0.0.1:" + port + "/myapp.git",
		"ssh://skiff@127.0.0.1:" + port + "/~/myapp",
	} {
		commit(t, repo, "n.txt", strings.Repeat("x", i+1), "change")
		if r := d.git(alice, repo, "push", url, "main"); r.code != 0 {
			t.Fatalf("push to %s: %s", url, r)
		}
	}
	if r := d.ssh(alice, "", "apps:list"); strings.Count(r.stdout, "myapp") != 1 {
		t.Fatalf("the forms made more than one app: %s", r)
	}
}

// Only the deploy branch is taken. Other branches, tags and deleting the
// deploy branch are refused with a reason, and the refs stay as they were.
// Force pushes are allowed, as on Heroku.
func TestRefPolicy(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	alice := d.addUser("alice", true)
	repo := newRepo(t, nil)
	d.git(alice, repo, "remote", "add", "skiff", d.remote("web"))
	if r := d.git(alice, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatal(r)
	}
	first := revParse(t, repo, "HEAD")
	lsRemote := func() string {
		return d.git(alice, repo, "ls-remote", "skiff").stdout
	}
	before := lsRemote()

	d.git(alice, repo, "branch", "feature")
	d.git(alice, repo, "tag", "v1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"push", "skiff", "feature"}, "branch feature is not deployed: web deploys branch main; push it with `git push <remote> feature:main`"},
		{[]string{"push", "skiff", "v1"}, "tags are not accepted (v1)"},
		{[]string{"push", "skiff", ":main"}, "deleting main is not allowed"},
		{[]string{"push", "skiff", "HEAD:refs/heads/--output=" + filepath.Join(d.dir, "canary")}, "invalid ref name"},
		{[]string{"push", "skiff", "HEAD:refs/notes/x"}, "ref refs/notes/x is not accepted"},
	} {
		r := d.git(alice, repo, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "pre-receive hook declined") {
			t.Errorf("git %v: want refusal %q, got %s", tc.args, tc.want, r)
		}
	}
	if _, err := os.Stat(filepath.Join(d.dir, "canary")); err == nil {
		t.Fatal("a ref name reached git as an option")
	}
	if after := lsRemote(); after != before {
		t.Fatalf("refused pushes changed the refs:\nbefore %s\nafter  %s", before, after)
	}

	// Rewrite history and force-push: accepted.
	d.git(alice, repo, "commit", "-q", "--amend", "-m", "rewritten")
	if r := d.git(alice, repo, "push", "skiff", "main"); r.code == 0 {
		t.Fatal("non-fast-forward push without --force was accepted")
	}
	if r := d.git(alice, repo, "push", "--force", "skiff", "main"); r.code != 0 {
		t.Fatalf("force push: %s", r)
	}
	if rewritten := revParse(t, repo, "HEAD"); rewritten == first || !strings.Contains(lsRemote(), rewritten) {
		t.Fatal("force push did not update main")
	}
}

// A repository that has only master deploys master.
func TestMasterAcceptedWhenAlone(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	alice := d.addUser("alice", true)
	repo := newRepo(t, nil)
	d.git(alice, repo, "branch", "-m", "main", "master")
	d.git(alice, repo, "remote", "add", "skiff", d.remote("old"))
	r := d.git(alice, repo, "push", "skiff", "master")
	if r.code != 0 || !strings.Contains(r.stderr, "on master from alice") {
		t.Fatalf("push master: %s", r)
	}
	// Once main exists, master is an ordinary other branch.
	d.git(alice, repo, "push", "skiff", "master:main")
	commit(t, repo, "b", "b", "more")
	if r := d.git(alice, repo, "push", "skiff", "master"); r.code == 0 {
		t.Fatalf("master accepted while main exists: %s", r)
	}
	// The deploy branch is a per-app setting.
	if r := d.ssh(alice, "", "git:set", "old", "deploy-branch", "master"); r.code != 0 {
		t.Fatal(r)
	}
	if r := d.git(alice, repo, "push", "skiff", "master"); r.code != 0 {
		t.Fatalf("push to the configured deploy branch: %s", r)
	}
}

// Objects are checked (receive.fsckObjects) and the pack size is capped.
func TestPushLimits(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "--max-push-size", "1m")
	alice := d.addUser("alice", true)

	big := make([]byte, 3<<20)
	rand.Read(big)
	repo := newRepo(t, map[string]string{"blob.bin": string(big)})
	d.git(alice, repo, "remote", "add", "skiff", d.remote("big"))
	if r := d.git(alice, repo, "push", "skiff", "main"); r.code == 0 || !strings.Contains(r.stderr, "pack exceeds maximum allowed size") {
		t.Fatalf("3 MiB push with a 1 MiB cap: %s", r)
	}

	// A tree with a ".git" entry is what fsck exists to refuse.
	bad := newRepo(t, nil)
	blob := strings.TrimSpace(d.git(alice, bad, "hash-object", "-w", "index.html").stdout)
	tree := gitStdin(t, bad, "100644 blob "+blob+"\t.GIT\n", "mktree")
	c := strings.TrimSpace(d.git(alice, bad, "commit-tree", tree, "-m", "evil").stdout)
	d.git(alice, bad, "remote", "add", "skiff", d.remote("evil"))
	if r := d.git(alice, bad, "push", "skiff", c+":refs/heads/main"); r.code == 0 {
		t.Fatalf("a tree with .GIT was accepted: %s", r)
	}
	if r := d.git(alice, bad, "ls-remote", "skiff"); strings.Contains(r.stdout, "refs/heads/main") {
		t.Fatalf("the refused push left a ref: %s", r)
	}
}

func gitStdin(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := execGit(dir, args...)
	r := runCmd(t, cmd, stdin)
	if r.code != 0 {
		t.Fatalf("git %v: %s", args, r)
	}
	return strings.TrimSpace(r.stdout)
}
