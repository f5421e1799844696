package e2etest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// Repo makes a git work tree with one commit of files (name → content) on
// main and returns its path.
func Repo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	Git(t, dir, "init", "-q", "-b", "main")
	Commit(t, dir, files, "first commit")
	return dir
}

// Commit writes files (name → content) in the work tree dir and commits
// them with msg.
func Commit(t testing.TB, dir string, files map[string]string, msg string) {
	t.Helper()
	names := make([]string, 0, len(files))
	for name, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil { //nolint:gosec // a work tree's files
			t.Fatal(err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	Git(t, dir, append([]string{"add", "--"}, names...)...)
	Git(t, dir, "commit", "-q", "-m", msg)
}

// Git runs git in dir (no SSH), failing the test if it fails.
func Git(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, GitEnv(dir, "false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
