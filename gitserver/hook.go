package gitserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/skiffhq/skiff"
)

// pushSession is a receive-pack that skiff started; its hook proves it
// belongs to the push by the token in its environment.
type pushSession struct {
	actor *skiff.Actor
	appID string
	ctx   context.Context // the SSH session's: it ends when the pusher goes away or is revoked
}

type pushTokens struct {
	mu sync.Mutex
	m  map[string]*pushSession
}

func (t *pushTokens) add(p *pushSession) string {
	b := make([]byte, 32)
	rand.Read(b)
	token := hex.EncodeToString(b)
	t.mu.Lock()
	t.m[token] = p
	t.mu.Unlock()
	return token
}

func (t *pushTokens) remove(token string) {
	t.mu.Lock()
	delete(t.m, token)
	t.mu.Unlock()
}

func (t *pushTokens) get(token string) *pushSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[token]
}

// writeHook writes the pre-receive hook that every receive-pack runs (git
// is told the directory with core.hooksPath, so repositories hold no hooks
// of their own and a moved binary needs only a restart).
func (s *Server) writeHook() error {
	if err := os.MkdirAll(s.cfg.HooksDir, 0o755); err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/sh\n# Written by skiff serve at start: the push pipeline runs in the daemon.\nexec %s hook pre-receive\n", shellQuote(s.cfg.HookCommand))
	tmp := filepath.Join(s.cfg.HooksDir, ".pre-receive.tmp")
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.cfg.HooksDir, "pre-receive"))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// RunHook answers a git hook that reached the daemon over the control
// socket: it finds the push by its token and runs the deploy pipeline,
// whose output goes to out (the pusher's terminal). It implements
// skiff.HookRunner.
func (s *Server) RunHook(ctx context.Context, h *skiff.Hook, out io.Writer) error {
	if h.Name != "pre-receive" {
		return skiff.Errorf(skiff.EINVALID, "skiff runs no %s hook", h.Name)
	}
	push := s.pushes.get(h.Token)
	if push == nil {
		return skiff.Errorf(skiff.EUNAUTHORIZED, "this hook only runs for pushes through skiff's SSH server")
	}
	updates, err := skiff.ParseRefUpdates(h.Input)
	if err != nil {
		return err
	}
	// The app may have been renamed or destroyed since the push began.
	app, err := s.cfg.Apps.FindAppByID(ctx, push.appID)
	if err != nil {
		return skiff.Errorf(skiff.ENOTFOUND, "the app was destroyed during the push")
	}
	ctx = skiff.WithActor(ctx, push.actor)
	ctx, stop := endWith(ctx, push.ctx)
	defer stop()
	return s.cfg.Deployer.PreReceive(ctx, &skiff.PushRequest{App: app, Pusher: push.actor, Updates: updates, GitEnv: h.Env}, out)
}
