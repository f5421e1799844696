// Package skiff holds the domain of the skiff platform: the types every
// other package speaks (App, User, Key, Push, Event), the validation rules for
// names that arrive from the network, the error codes that each edge maps to
// its own protocol once, and the seam interfaces that let the packages work
// together without importing one another.
//
// It imports only the standard library. Adapters live in their own packages
// (store for SQLite, gitserver for SSH and git, control for the local socket,
// admin for the command vocabulary, deploy for the push pipeline); only
// cmd/skiff wires them together.
package skiff

// Version is stamped at build time with -ldflags "-X github.com/skiffhq/skiff.Version=…".
var Version = "dev"
