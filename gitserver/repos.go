package gitserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

// Repos keeps one bare repository per app under a directory, named by the
// app's stable id (so a rename moves nothing and a name reused after
// destroy starts empty). It runs git itself, with an explicit environment
// that ignores the host's git configuration.
type Repos struct {
	dir  string // DATA/repos
	home string // an empty HOME for git
}

var _ skiff.Repos = (*Repos)(nil)

// NewRepos returns the repositories under dir, creating dir.
func NewRepos(dir string) (*Repos, error) {
	home := filepath.Join(dir, ".home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	return &Repos{dir: dir, home: home}, nil
}

var appIDRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Path returns the repository directory of an app id.
func (r *Repos) Path(appID string) (string, error) {
	if !appIDRE.MatchString(appID) {
		return "", fmt.Errorf("invalid app id %q", appID)
	}
	return filepath.Join(r.dir, appID+".git"), nil
}

// env is the environment of every git command skiff runs.
func (r *Repos) env(extra ...string) []string {
	return append([]string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + r.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	}, extra...)
}

func (r *Repos) git(ctx context.Context, dir string, env []string, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = r.env(env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	fail := func(err error) error {
		return fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	if stdout == nil {
		if err := cmd.Run(); err != nil {
			return fail(err)
		}
		return nil
	}
	// Stdout goes to the writer at the writer's pace (a build reads an
	// archive when its sandbox is ready, which may be long after git has
	// written all and exited): read from a pipe here, not through exec's
	// copying goroutine, which WaitDelay would cut off.
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	_, copyErr := io.Copy(stdout, pipe)
	if copyErr != nil {
		_ = cmd.Process.Kill() // the reader went away: git must not wait on a full pipe
	}
	if err := cmd.Wait(); err != nil && copyErr == nil {
		return fail(err)
	}
	if copyErr != nil {
		return fmt.Errorf("git %s: %w", args[0], copyErr)
	}
	return nil
}

// InitRepo creates the app's bare repository if it does not exist.
func (r *Repos) InitRepo(ctx context.Context, appID string) error {
	path, err := r.Path(appID)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(path, "HEAD")); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	os.RemoveAll(tmp)
	if err := r.git(ctx, r.dir, nil, nil, "init", "--quiet", "--bare", "--initial-branch="+skiff.DefaultDeployBranch, tmp); err != nil {
		return err
	}
	// The policy lives in the repository too, so that `git` run by hand on
	// the server behaves as skiff does; skiff also passes it on every run.
	for _, kv := range repoConfig(0) {
		k, v, _ := strings.Cut(kv, "=")
		if err := r.git(ctx, tmp, nil, nil, "config", k, v); err != nil {
			return err
		}
	}
	// git archive must never expand $Format:…$ placeholders from a pushed
	// .gitattributes (the CVE-2022-41903 shape); info/attributes wins over
	// in-tree attributes.
	if err := os.WriteFile(filepath.Join(tmp, "info", "attributes"), []byte("* -export-subst -export-ignore\n"), 0o644); err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(tmp, "hooks")) // hooks come from skiff's own hooks path
	return os.Rename(tmp, path)
}

// repoConfig is the receive policy: objects are checked, deletes and
// non-fast-forward pushes are left to skiff's hook (which allows force pushes
// like Heroku and refuses deleting the deploy branch with a reason), and the
// pack size is capped when maxBytes > 0.
func repoConfig(maxBytes int64) []string {
	cfg := []string{
		"receive.fsckObjects=true",
		"transfer.fsckObjects=true",
		"receive.denyNonFastForwards=false",
		"receive.advertisePushOptions=false",
		"core.logAllRefUpdates=true",
		"uploadpack.allowFilter=true",
	}
	if maxBytes > 0 {
		cfg = append(cfg, "receive.maxInputSize="+strconv.FormatInt(maxBytes, 10))
	}
	return cfg
}

// RemoveRepo deletes the app's repository.
func (r *Repos) RemoveRepo(ctx context.Context, appID string) error {
	path, err := r.Path(appID)
	if err != nil {
		return err
	}
	// Rename first so a half-removed repository is never served.
	trash := filepath.Join(r.dir, ".trash-"+appID+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(path, trash); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	return os.RemoveAll(trash)
}

// quarantineEnv keeps only the variables git gives a pre-receive hook to
// find the pushed objects, and only when they point inside the repository.
func quarantineEnv(repo string, env []string) []string {
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH":
			ok := true
			for _, p := range filepath.SplitList(v) {
				if rel, err := filepath.Rel(repo, filepath.Clean(p)); err != nil || strings.HasPrefix(rel, "..") {
					ok = false
				}
			}
			if ok {
				out = append(out, kv)
			}
		}
	}
	return out
}

// ReadCommit reads a commit's author, time and subject.
func (r *Repos) ReadCommit(ctx context.Context, appID, id string, env []string) (*skiff.Commit, error) {
	path, err := r.Path(appID)
	if err != nil {
		return nil, err
	}
	if !skiff.ValidObjectID(id) {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid commit id %q", id)
	}
	var out bytes.Buffer
	if err := r.git(ctx, path, quarantineEnv(path, env), &out, "cat-file", "commit", id); err != nil {
		return nil, err
	}
	return parseCommit(id, out.Bytes()), nil
}

// parseCommit reads the raw commit object git cat-file prints.
func parseCommit(id string, raw []byte) *skiff.Commit {
	c := &skiff.Commit{ID: id}
	header, body, _ := bytes.Cut(raw, []byte("\n\n"))
	for _, line := range strings.Split(string(header), "\n") {
		if rest, ok := strings.CutPrefix(line, "author "); ok {
			// "Name <email> 1700000000 +0100"
			if i := strings.LastIndexByte(rest, '>'); i >= 0 {
				c.Author = rest[:i+1]
				if f := strings.Fields(rest[i+1:]); len(f) > 0 {
					if sec, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						c.Time = time.Unix(sec, 0)
					}
				}
			}
		}
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	c.Subject = sanitizeLine(subject, 200)
	return c
}

// sanitizeLine removes control characters (terminal escapes in a commit
// message must not reach other users' terminals) and caps the length.
func sanitizeLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// HasBranch reports whether refs/heads/<branch> exists.
func (r *Repos) HasBranch(ctx context.Context, appID, branch string) (bool, error) {
	path, err := r.Path(appID)
	if err != nil {
		return false, err
	}
	if err := skiff.ValidateBranchName(branch); err != nil {
		return false, err
	}
	var out bytes.Buffer
	if err := r.git(ctx, path, nil, &out, "for-each-ref", "--format=%(refname)", "refs/heads/"+branch); err != nil {
		return false, err
	}
	return strings.TrimSpace(out.String()) == "refs/heads/"+branch, nil
}

// Archive writes the tree of a commit as a tar stream.
func (r *Repos) Archive(ctx context.Context, appID, id string, env []string, w io.Writer) error {
	path, err := r.Path(appID)
	if err != nil {
		return err
	}
	if !skiff.ValidObjectID(id) {
		return skiff.Errorf(skiff.EINVALID, "invalid commit id %q", id)
	}
	return r.git(ctx, path, quarantineEnv(path, env), w, "archive", "--format=tar", id)
}

// ReadFile reads a file of a commit's tree with git cat-file.
func (r *Repos) ReadFile(ctx context.Context, appID, id, path string, env []string, max int64) ([]byte, error) {
	repo, err := r.Path(appID)
	if err != nil {
		return nil, err
	}
	if !skiff.ValidObjectID(id) || path == "" || strings.HasPrefix(path, "-") || strings.HasPrefix(path, "/") || strings.Contains(path, "..") {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid file %s of commit %s", path, id)
	}
	env = quarantineEnv(repo, env)
	var size bytes.Buffer
	if err := r.git(ctx, repo, env, &size, "cat-file", "-s", id+":"+path); err != nil {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "%s has no %s", skiff.ShortID(id), path)
	}
	if n, _ := strconv.ParseInt(strings.TrimSpace(size.String()), 10, 64); n > max {
		return nil, skiff.Errorf(skiff.EINVALID, "%s is larger than %d bytes", path, max)
	}
	var out bytes.Buffer
	if err := r.git(ctx, repo, env, &out, "cat-file", "blob", id+":"+path); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
