package skiff

import (
	"context"
	"io"
)

// Invocation is one run of an admin command, from SSH or the local CLI.
type Invocation struct {
	Actor  *Actor
	Args   []string // the parsed command line: Args[0] is the command
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	TTY    *TTY // non-nil when the client asked for a terminal
}

// TTY describes the client's terminal; Resize delivers window changes.
type TTY struct {
	Term          string
	Width, Height int
	Resize        <-chan WindowSize
}

// WindowSize is a terminal size in characters.
type WindowSize struct{ Width, Height int }

// CommandRunner runs admin commands and returns the exit status: 0 success,
// 1 error, 2 bad usage.
type CommandRunner interface {
	RunCommand(ctx context.Context, inv *Invocation) int
}

// Hook is a git hook run that reached the daemon: its name, the push token
// from its environment, its stdin, and the git variables of its environment.
type Hook struct {
	Name  string   `json:"name"`
	Token string   `json:"token"`
	Input string   `json:"input"`
	Env   []string `json:"env"`
}

// HookRunner runs git hooks in the daemon. A non-nil error fails the hook
// (rejecting the push); its message is shown to the pusher.
type HookRunner interface {
	RunHook(ctx context.Context, h *Hook, out io.Writer) error
}
