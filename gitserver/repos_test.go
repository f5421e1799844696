package gitserver_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/gitserver"
)

// Repos over real git: ids that could name another path are refused, a
// commit's files and metadata are read with limits, and an archive never
// expands export-subst placeholders from pushed attributes.
func TestRepos(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	ctx := context.Background()
	dir := t.TempDir()
	repos, err := gitserver.NewRepos(filepath.Join(dir, "repos"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../etc", "", "0123456789ABCDEF", "0123456789abcdef/.."} {
		if _, err := repos.Path(id); err == nil {
			t.Errorf("Path(%q) accepted", id)
		}
	}
	const id = "0123456789abcdef"
	if err := repos.InitRepo(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := repos.InitRepo(ctx, id); err != nil {
		t.Fatalf("InitRepo again: %v", err)
	}
	work := filepath.Join(dir, "work")
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=Ann", "GIT_AUTHOR_EMAIL=a@x", "GIT_COMMITTER_NAME=Ann", "GIT_COMMITTER_EMAIL=a@x")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(work, 0o755)
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "app.json"), []byte(`{"healthchecks": {}}`), 0o644)
	os.WriteFile(filepath.Join(work, "version.txt"), []byte("$Format:%H$\n"), 0o644)
	os.WriteFile(filepath.Join(work, ".gitattributes"), []byte("version.txt export-subst\n"), 0o644)
	git("add", "-A")
	git("commit", "-q", "-m", "Add the app")
	commit := git("rev-parse", "HEAD")
	path, _ := repos.Path(id)
	git("push", "-q", path, "HEAD:refs/heads/main")

	c, err := repos.ReadCommit(ctx, id, commit, nil)
	if err != nil || c.Subject != "Add the app" || !strings.Contains(c.Author, "Ann") {
		t.Fatalf("ReadCommit: %+v %v", c, err)
	}
	if b, err := repos.ReadFile(ctx, id, commit, "app.json", nil, 1024); err != nil || !strings.Contains(string(b), "healthchecks") {
		t.Fatalf("ReadFile: %q %v", b, err)
	}
	if _, err := repos.ReadFile(ctx, id, commit, "app.json", nil, 4); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("ReadFile over its limit: %v", err)
	}
	if _, err := repos.ReadFile(ctx, id, commit, "Procfile", nil, 1024); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("ReadFile of a missing file: %v", err)
	}
	if ok, err := repos.HasBranch(ctx, id, "main"); !ok || err != nil {
		t.Fatalf("HasBranch main: %v %v", ok, err)
	}
	if ok, _ := repos.HasBranch(ctx, id, "master"); ok {
		t.Fatal("HasBranch master")
	}
	var buf bytes.Buffer
	if err := repos.Archive(ctx, id, commit, nil, &buf); err != nil {
		t.Fatal(err)
	}
	// A reader that starts late (a build whose sandbox takes its time)
	// gets the whole archive: git, long done, is not cut off.
	late := &lateReader{delay: 7 * time.Second}
	if err := repos.Archive(ctx, id, commit, nil, late); err != nil || late.n != int64(buf.Len()) {
		t.Fatalf("Archive to a late reader: %d of %d bytes, %v", late.n, buf.Len(), err)
	}
	// A reader that goes away ends the archive with its error.
	if err := repos.Archive(ctx, id, commit, nil, failingWriter{}); err == nil || !strings.Contains(err.Error(), "reader gone") {
		t.Fatalf("Archive to a reader that went away: %v", err)
	}
	tr := tar.NewReader(&buf)
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "version.txt" {
			b, _ := io.ReadAll(tr)
			found = true
			if string(b) != "$Format:%H$\n" {
				t.Fatalf("export-subst was expanded: %q", b)
			}
		}
	}
	if !found {
		t.Fatal("the archive lacks version.txt")
	}
	if err := repos.RemoveRepo(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the repository is still there: %v", err)
	}
}

// lateReader takes its first bytes only after delay, as a build does.
type lateReader struct {
	delay time.Duration
	n     int64
}

func (l *lateReader) Write(p []byte) (int, error) {
	if l.n == 0 {
		time.Sleep(l.delay)
	}
	l.n += int64(len(p))
	return len(p), nil
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("reader gone") }
