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
