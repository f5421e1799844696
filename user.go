package skiff

import (
	"context"
	"regexp"
	"time"
)

// User is a person or machine that holds SSH keys. Admins manage users and
// may act on every app; other users act on the apps they own or were given
// access to.
type User struct {
	ID        int64     `json:"-"`
	Name      string    `json:"name"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
}

// Key is an SSH public key of a user. The fingerprint (SHA256, as OpenSSH
// prints it) identifies the key and is unique across all users.
type Key struct {
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	PublicKey   string    `json:"public_key"` // authorized_keys format, without comment
	Comment     string    `json:"comment,omitempty"`
	User        string    `json:"user"`
	CreatedAt   time.Time `json:"created_at"`
}

var userNameRE = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,38}$`)

// ValidateUserName checks a user name: lower-case letters, digits, '.', '_'
// and '-', starting with a letter, at most 39 characters.
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid user name %s: use lower-case letters, digits, '.', '_' or '-', starting with a letter", quoteForUser(name))
	}
	return nil
}

// UserService stores users and their keys. A user exists while it has at
// least one key; removing the last key removes the user.
type UserService interface {
	// AddKey adds the keys to the named user, creating the user when it does
	// not exist, all of them or none: a key that belongs to anyone already
	// (or is given twice) fails with ECONFLICT and changes nothing. admin is
	// applied when it is true (it never demotes).
	AddKey(ctx context.Context, userName string, admin bool, keys ...*Key) (*User, error)
	FindUserByFingerprint(ctx context.Context, fingerprint string) (*User, error)
	FindUserByName(ctx context.Context, name string) (*User, error)
	ListKeys(ctx context.Context) ([]*Key, error)
	ListUsers(ctx context.Context) ([]*User, error)
	// RemoveKey removes the key with the fingerprint, or every key of the
	// user when fingerprint is empty. Removing the last admin fails.
	RemoveKey(ctx context.Context, userName, fingerprint string) (int, error)
}

// AccessService records who may push to and manage which app. Owners and
// admins always have access; others need a grant.
type AccessService interface {
	GrantAccess(ctx context.Context, appID, userName string) error
	RevokeAccess(ctx context.Context, appID, userName string) error
	ListAccess(ctx context.Context, appID string) ([]string, error)
	HasAccess(ctx context.Context, appID string, user *User) (bool, error)
}

// Actor is who performs an operation, carried in the context so that the
// store can write the audit event in the same transaction as the change.
type Actor struct {
	Name        string // user name, or "local:<unix user>" for the server's own CLI
	Fingerprint string // key fingerprint for SSH actors
	User        *User  // nil for the local CLI
}

// Admin reports whether the actor may do everything: admins and the local
// CLI (root on the server).
func (a *Actor) Admin() bool { return a != nil && (a.User == nil || a.User.Admin) }

type actorKey struct{}

// WithActor returns a context that carries the actor.
func WithActor(ctx context.Context, a *Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx, or a system actor when there is none.
func ActorFrom(ctx context.Context) *Actor {
	if a, ok := ctx.Value(actorKey{}).(*Actor); ok && a != nil {
		return a
	}
	return &Actor{Name: "skiff"}
}
