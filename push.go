package skiff

import (
	"context"
	"io"
	"regexp"
	"strings"
	"time"
)

// RefUpdate is one line of a pre-receive hook's input: a ref moving from Old
// to New. An all-zero Old creates the ref; an all-zero New deletes it.
type RefUpdate struct {
	Old, New, Ref string
}

var objectIDRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// IsZeroID reports whether id is git's null object id.
func IsZeroID(id string) bool { return strings.Trim(id, "0") == "" }

// ValidObjectID reports whether id is a full SHA-1 or SHA-256 object id in
// lower-case hex (and so can never be read as an option).
func ValidObjectID(id string) bool { return objectIDRE.MatchString(id) }

// MaxRefUpdates caps the ref updates of one push.
const MaxRefUpdates = 1000

// ParseRefUpdates parses the pre-receive hook's input: one "<old> <new>
// <ref>" line per updated ref. Anything else is an EINVALID error: the input
// comes from git, but the daemon treats it as untrusted.
func ParseRefUpdates(input string) ([]RefUpdate, error) {
	var updates []RefUpdate
	for line := range strings.Lines(input) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		if len(updates) == MaxRefUpdates {
			return nil, Errorf(EINVALID, "too many refs in one push (the limit is %d)", MaxRefUpdates)
		}
		f := strings.Split(line, " ")
		if len(f) != 3 || !ValidObjectID(f[0]) || !ValidObjectID(f[1]) || len(f[0]) != len(f[1]) {
			return nil, Errorf(EINVALID, "malformed ref update %s", quoteForUser(line))
		}
		if !validRefName(f[2]) {
			return nil, Errorf(EINVALID, "invalid ref name %s", quoteForUser(f[2]))
		}
		updates = append(updates, RefUpdate{Old: f[0], New: f[1], Ref: f[2]})
	}
	return updates, nil
}

// validRefName accepts full ref names as git would store them, and nothing
// that could be taken for an option or escape the refs directory.
func validRefName(ref string) bool {
	if len(ref) > 255 || !strings.HasPrefix(ref, "refs/") {
		return false
	}
	for _, part := range strings.Split(ref, "/") {
		if part == "" || part[0] == '.' || part[0] == '-' || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	for _, r := range ref {
		if r < 0x21 || r == 0x7f || strings.ContainsRune(`~^:?*[\`, r) {
			return false
		}
	}
	return !strings.Contains(ref, "..") && !strings.Contains(ref, "@{")
}

// Commit is the metadata of a pushed commit.
type Commit struct {
	ID      string
	Author  string
	Subject string
	Time    time.Time
}

// Short returns the abbreviated commit id.
func (c *Commit) Short() string { return ShortID(c.ID) }

// ShortID abbreviates an object id to 7 characters.
func ShortID(id string) string {
	if len(id) > 7 {
		return id[:7]
	}
	return id
}

// Push is a recorded push of an app's deploy branch.
type Push struct {
	ID        int64     `json:"id"`
	AppID     string    `json:"app_id"`
	Ref       string    `json:"ref"`
	OldCommit string    `json:"old_commit"`
	Commit    string    `json:"commit"`
	Pusher    string    `json:"pusher"`
	CreatedAt time.Time `json:"created_at"`
}

// PushService records pushes.
type PushService interface {
	RecordPush(ctx context.Context, p *Push) error // sets ID and CreatedAt
	ListPushes(ctx context.Context, appID string, limit int) ([]*Push, error)
}

// PushRequest is what the pre-receive hook hands to the pipeline: the app,
// who pushed, the ref updates, and the environment git gave the hook (its
// quarantine object directory, where the pushed objects wait until the hook
// accepts them).
type PushRequest struct {
	App     *App
	Pusher  *Actor
	Updates []RefUpdate
	GitEnv  []string // GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES, GIT_QUARANTINE_PATH
}

// Repos keeps the bare git repositories, one per app, keyed by app ID.
type Repos interface {
	InitRepo(ctx context.Context, appID string) error // idempotent
	RemoveRepo(ctx context.Context, appID string) error
	// ReadCommit reads a commit's metadata; env carries the hook's quarantine.
	ReadCommit(ctx context.Context, appID, id string, env []string) (*Commit, error)
	// ReadFile reads a file of commit id's tree, at most max bytes;
	// ENOTFOUND when the tree has no such file.
	ReadFile(ctx context.Context, appID, id, path string, env []string, max int64) ([]byte, error)
	// HasBranch reports whether the repository has the branch.
	HasBranch(ctx context.Context, appID, branch string) (bool, error)
	// Archive writes the tree of commit id as a tar stream to w.
	Archive(ctx context.Context, appID, id string, env []string, w io.Writer) error
}
