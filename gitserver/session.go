package gitserver

import (
	"fmt"

	"github.com/gliderlabs/ssh"

	"github.com/skiffhq/skiff"
)

// handleSession runs one exec request: a git transfer or an admin command.
// A shell request (no command) gets the commands' answer to an empty
// command line: how to give one, and exit status 2.
func (s *Server) handleSession(sess ssh.Session) {
	s.wg.Add(1)
	defer s.wg.Done()
	actor, err := s.actor(sess.Context())
	if err != nil {
		fail(sess, 1, "not authorized")
		return
	}
	// A removed key ends the session (revoke.go).
	ctx, stop := s.revocable(sess.Context(), actor, "")
	defer stop()
	raw := sess.RawCommand()
	if raw == "" {
		inv := &skiff.Invocation{Actor: actor, Stdin: sess, Stdout: sess, Stderr: sess.Stderr(), TTY: tty(sess)}
		_ = sess.Exit(s.cfg.Commands.RunCommand(ctx, inv))
		return
	}
	args, starts, err := skiff.ParseCommandLineOffsets(raw)
	if err != nil {
		fail(sess, 2, skiff.ErrorMessage(err))
		return
	}
	if verb, ok := gitVerb(args); ok {
		_ = sess.Exit(s.serveGit(ctx, sess, actor, verb, args)) // which says when it was revoked
		return
	}
	inv := &skiff.Invocation{Actor: actor, Args: args, Raw: raw, RawStarts: starts, Stdin: sess, Stdout: sess, Stderr: sess.Stderr(), TTY: tty(sess)}
	_ = sess.Exit(endRevoked(ctx, sess, s.cfg.Commands.RunCommand(ctx, inv))) // the status of a session whose client left
}

// tty is the terminal the client asked for (ssh -t), or nil.
func tty(sess ssh.Session) *skiff.TTY {
	pty, winch, ok := sess.Pty()
	if !ok {
		return nil
	}
	return &skiff.TTY{Term: pty.Term, Width: pty.Window.Width, Height: pty.Window.Height, Resize: windowSizes(winch)}
}

// windowSizes converts gliderlabs window changes; the channel closes with
// the session.
func windowSizes(in <-chan ssh.Window) <-chan skiff.WindowSize {
	out := make(chan skiff.WindowSize, 1)
	go func() {
		defer close(out)
		for w := range in {
			select {
			case out <- skiff.WindowSize{Width: w.Width, Height: w.Height}:
			default: // a reader that is not reading only needs the latest size
			}
		}
	}()
	return out
}

func fail(sess ssh.Session, code int, msg string) {
	fmt.Fprintf(sess.Stderr(), " !     %s\n", msg)
	_ = sess.Exit(code)
}

// gitVerb recognizes the commands git runs over SSH.
func gitVerb(args []string) (string, bool) {
	switch args[0] {
	case "git-receive-pack", "git-upload-pack", "git-upload-archive":
		return args[0], true
	case "git":
		if len(args) > 1 && (args[1] == "receive-pack" || args[1] == "upload-pack" || args[1] == "upload-archive") {
			return "git-" + args[1], true
		}
	}
	return "", false
}
