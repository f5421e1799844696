package gitserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/gliderlabs/ssh"

	"github.com/skiffhq/skiff"
)

// appFromPath reads the app name from the path git sends: "myapp",
// "myapp.git", "/myapp" and "~/myapp" all name myapp.
func appFromPath(p string) (string, error) {
	name := strings.TrimPrefix(p, "~/")
	name = strings.TrimPrefix(name, "/")
	name = strings.TrimSuffix(name, ".git")
	if err := skiff.ValidateAppName(name); err != nil {
		return "", err
	}
	return name, nil
}

// serveGit runs git's own receive-pack or upload-pack for an app the actor
// may use, and returns the exit status for the SSH session.
func (s *Server) serveGit(ctx context.Context, sess ssh.Session, actor *skiff.Actor, verb string, args []string) int {
	ctx = skiff.WithActor(ctx, actor)
	if args[0] == "git" {
		args = args[1:]
	}
	if verb == "git-upload-archive" {
		return gitFail(sess, "git archive --remote is not supported; clone the app instead")
	}
	if len(args) != 2 {
		return gitFail(sess, "usage: git-receive-pack|git-upload-pack '<app>'")
	}
	name, err := appFromPath(args[1])
	if err != nil {
		return gitFail(sess, skiff.ErrorMessage(err))
	}
	app, err := s.authorizeGit(ctx, sess, actor, verb, name)
	if err != nil {
		return gitFail(sess, skiff.ErrorMessage(err))
	}
	// Access to the app removed: the transfer (and the push's pipeline)
	// ends.
	ctx, stop := s.revocable(ctx, actor, app.ID)
	defer stop()
	if err := s.cfg.Repos.InitRepo(ctx, app.ID); err != nil {
		s.cfg.Log.Error("init repository", "app", app.Name, "err", err)
		return gitFail(sess, "the app's repository is not available; the server log has the details")
	}
	path, _ := s.cfg.Repos.Path(app.ID)

	var gitArgs []string
	for _, kv := range repoConfig(s.cfg.MaxPushBytes) {
		gitArgs = append(gitArgs, "-c", kv)
	}
	gitArgs = append(gitArgs, "-c", "core.hooksPath="+s.cfg.HooksDir)
	env := s.cfg.Repos.env()
	for _, kv := range sess.Environ() { // the channel filter let only a valid GIT_PROTOCOL through
		if strings.HasPrefix(kv, "GIT_PROTOCOL=") && gitProtocolRE.MatchString(strings.TrimPrefix(kv, "GIT_PROTOCOL=")) {
			env = append(env, kv)
		}
	}
	if verb == "git-receive-pack" {
		token := s.pushes.add(&pushSession{actor: actor, appID: app.ID, ctx: ctx})
		defer s.pushes.remove(token)
		env = append(env, "SKIFF_PUSH_TOKEN="+token, "SKIFF_CONTROL_SOCKET="+s.cfg.ControlSocket)
		gitArgs = append(gitArgs, "receive-pack", path)
	} else {
		gitArgs = append(gitArgs, "upload-pack", "--strict", path)
	}
	s.cfg.Log.Info(strings.TrimPrefix(verb, "git-"), "app", app.Name, "actor", actor.Name)
	return endRevoked(ctx, sess, s.runGit(ctx, sess, env, gitArgs))
}

// authorizeGit applies the access rule, with git's twist: an admin's push
// to an app that does not exist creates it, as Dokku does.
func (s *Server) authorizeGit(ctx context.Context, sess ssh.Session, actor *skiff.Actor, verb, name string) (*skiff.App, error) {
	app, err := skiff.AuthorizeApp(ctx, s.cfg.Apps, s.cfg.Access, actor, name, false)
	switch {
	case skiff.ErrorCode(err) == skiff.ENOTFOUND && actor.Admin() && verb == "git-receive-pack":
		fmt.Fprintf(sess.Stderr(), "-----> Creating app %s\n", name)
		return s.cfg.Deployer.CreateApp(ctx, name)
	case err == skiff.ErrNotAuthorized:
		s.cfg.Log.Warn("not authorized", "actor", actor.Name, "fingerprint", actor.Fingerprint, "git", verb, "app", name)
	}
	return app, err
}

// runGit runs git with the session as its stdio. Stdin is copied by our own
// goroutine: exec's copier would keep Wait blocked until the client closes
// its side, which a git client does not do before it reads the result.
func (s *Server) runGit(ctx context.Context, sess ssh.Session, env, args []string) int {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = sess, sess.Stderr()
	// SIGTERM first: git removes a push's quarantined objects on its way
	// out; SIGKILL follows after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return gitFail(sess, "internal error")
	}
	if err := cmd.Start(); err != nil {
		s.cfg.Log.Error("start git", "err", err)
		return gitFail(sess, "git is not available on the server")
	}
	go func() {
		_, _ = io.Copy(stdin, sess) // git sees the end of its input either way
		_ = stdin.Close()
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		if ctx.Err() == nil {
			s.cfg.Log.Error("git", "err", err)
		}
		return 1
	}
}

func gitFail(sess ssh.Session, msg string) int {
	fmt.Fprintf(sess.Stderr(), " !     %s\n", msg)
	return 1
}
