package skiff

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// App is a deployable application. Its ID is stable for its whole life and
// keys everything on disk (repository, caches, instances); its Name is what
// users type and may change with apps:rename.
type App struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Owner        string    `json:"owner,omitempty"` // user name; empty when the owner was removed
	DeployBranch string    `json:"deploy_branch"`
	CreatedAt    time.Time `json:"created_at"`
}

// DefaultDeployBranch is the branch a push must update to deploy.
const DefaultDeployBranch = "main"

var appNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,61}[a-z0-9]$`)

// reservedAppNames would shadow the platform's own hosts or confuse readers of
// URLs and logs.
var reservedAppNames = map[string]bool{
	"skiff": true, "admin": true, "api": true, "git": true, "ssh": true,
	"www": true, "localhost": true, "router": true, "default": true,
}

// ValidateAppName reports whether name may name an app: a DNS label of 2 to
// 63 characters (lower-case letters, digits and hyphens, starting with a
// letter and not ending with a hyphen), without "--" (so no punycode-looking
// labels) and not reserved.
func ValidateAppName(name string) error {
	if !appNameRE.MatchString(name) || strings.Contains(name, "--") {
		return Errorf(EINVALID, "invalid app name %s: use 2 to 63 lower-case letters, digits and single hyphens, starting with a letter (like my-app)", quoteForUser(name))
	}
	if reservedAppNames[name] {
		return Errorf(EINVALID, "app name %q is reserved; choose another", name)
	}
	return nil
}

// ValidateBranchName checks a deploy branch name: a plain git branch name
// that can never be read as an option.
func ValidateBranchName(name string) error {
	if !branchRE.MatchString(name) || strings.Contains(name, "..") || strings.HasSuffix(name, ".lock") || strings.HasSuffix(name, "/") {
		return Errorf(EINVALID, "invalid branch name %s", quoteForUser(name))
	}
	return nil
}

var branchRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]{0,99}$`)

// quoteForUser quotes s for an error message, shortened so a 1 MB argument
// does not come back as a 1 MB error.
func quoteForUser(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// AppFilter selects apps for listing.
type AppFilter struct {
	VisibleTo *User // nil: every app
}

// AppService stores apps. Names are unique; CreateApp fails with ECONFLICT
// when the name is taken. Find methods fail with ENOTFOUND.
// Methods that change state record an audit event for the actor in ctx.
type AppService interface {
	CreateApp(ctx context.Context, app *App) error // sets ID and CreatedAt
	FindAppByName(ctx context.Context, name string) (*App, error)
	FindAppByID(ctx context.Context, id string) (*App, error)
	ListApps(ctx context.Context, filter AppFilter) ([]*App, error)
	RenameApp(ctx context.Context, id, newName string) error
	SetDeployBranch(ctx context.Context, id, branch string) error
	DeleteApp(ctx context.Context, id string) error
}
