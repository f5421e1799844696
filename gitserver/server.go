// Package gitserver is skiff's SSH server: public-key authentication, the
// admin commands, and git pushes and fetches with git's own receive-pack and
// upload-pack. It also keeps the bare repositories (Repos) and answers the
// pre-receive hook that git runs for each push, handing the push to the
// deploy pipeline.
//
// Who a connection is comes only from the key that actually signed the
// authentication (x/crypto's VerifiedPublicKeyCallback), looked up afresh in
// the session handler — never from keys that were merely offered
// (CVE-2024-45337, gliderlabs/ssh #242).
package gitserver

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/skiffhq/skiff"
)

// Config is what the server needs.
type Config struct {
	HostKey  gossh.Signer
	Users    skiff.UserService
	Apps     skiff.AppService
	Access   skiff.AccessService
	Deployer skiff.Deployer
	Commands skiff.CommandRunner
	Repos    *Repos
	Log      *slog.Logger

	// HookCommand is the program git runs as the pre-receive hook, as
	// `HookCommand hook pre-receive` (skiff-hook, or skiff itself); HooksDir is where the hook
	// script is written; ControlSocket is where the hook reaches the daemon.
	HookCommand   string
	HooksDir      string
	ControlSocket string

	MaxPushBytes   int64         // receive.maxInputSize; 0 for no cap
	PreAuthTimeout time.Duration // connect to session start; default 20s
	IdleTimeout    time.Duration // no traffic either way; default 10m
	MaxDuration    time.Duration // any connection; default 2h
	// RevokeCheck is how often a session checks its key and access are
	// still there; default skiff.RevokeCheckInterval.
	RevokeCheck time.Duration
}

// Server is the SSH server.
type Server struct {
	cfg    Config
	ssh    *ssh.Server
	pushes pushTokens
	// preAuth counts each address's connections that have not
	// authenticated yet, to cap them.
	preAuthMu sync.Mutex
	preAuth   map[string]int
	// wg counts running sessions, so Shutdown can wait for pushes to end.
	wg sync.WaitGroup
}

// New returns a server; call Serve to accept connections.
func New(cfg Config) (*Server, error) {
	if cfg.PreAuthTimeout == 0 {
		cfg.PreAuthTimeout = 20 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = 2 * time.Hour
	}
	s := &Server{cfg: cfg, pushes: pushTokens{m: map[string]*pushSession{}}, preAuth: map[string]int{}}
	if err := s.writeHook(); err != nil {
		return nil, err
	}
	s.ssh = &ssh.Server{
		Version:     "skiff",
		HostSigners: []ssh.Signer{cfg.HostKey},
		Handler:     s.handleSession,
		// Every offered key is checked, but who the user is gets decided by
		// the key that signed: see verifiedKey.
		PublicKeyHandler:     s.keyKnown,
		ServerConfigCallback: s.serverConfig,
		ConnCallback:         s.preAuthDeadline,
		// A shell request is answered with how to give a command (session.go).
		SessionRequestCallback: func(_ ssh.Session, kind string) bool { return kind == "exec" || kind == "shell" },
		PtyCallback:            func(ssh.Context, ssh.Pty) bool { return true },
		IdleTimeout:            cfg.IdleTimeout,
		MaxTimeout:             cfg.MaxDuration,
		ChannelHandlers:        map[string]ssh.ChannelHandler{"session": filteredSession},
		RequestHandlers:        map[string]ssh.RequestHandler{}, // no port forwarding of any kind
	}
	return s, nil
}

// Serve accepts connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.ssh.Serve(l)
	if err == ssh.ErrServerClosed {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for running sessions
// (pushes in flight finish) until ctx ends, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.ssh.Shutdown(ctx)
	if err != nil {
		_ = s.ssh.Close() // past the grace: what is left is cut
	}
	return err
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.ssh.Close() }

type ctxKey string

const ctxAuthed ctxKey = "skiff-authed"

const fingerprintExt = "skiff-fingerprint"

// serverConfig adds what gliderlabs/ssh does not set itself: the callback
// that learns which key actually signed, and the auth attempt cap.
func (s *Server) serverConfig(ctx ssh.Context) *gossh.ServerConfig {
	return &gossh.ServerConfig{
		Config:                  gossh.Config{KeyExchanges: kexAlgorithms, Ciphers: ciphers, MACs: macs},
		PublicKeyAuthAlgorithms: clientKeyAlgs,
		MaxAuthTries:            6,
		VerifiedPublicKeyCallback: func(_ gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
			if authed, ok := ctx.Value(ctxAuthed).(*preAuthState); ok {
				authed.ok.Store(true)
				authed.done()
			}
			// A fresh Permissions object: gliderlabs shares one per connection
			// among all offered keys; this one belongs to the signing key only.
			return &gossh.Permissions{Extensions: map[string]string{fingerprintExt: gossh.FingerprintSHA256(key)}}, nil
		},
	}
}

// keyKnown answers whether an offered key belongs to anyone. Unknown and
// known keys cost one lookup each, so timing does not tell users apart.
func (s *Server) keyKnown(ctx ssh.Context, key ssh.PublicKey) bool {
	_, err := s.cfg.Users.FindUserByFingerprint(ctx, gossh.FingerprintSHA256(key))
	return err == nil
}

// MaxPreAuthPerAddr caps the connections from one address that have not
// authenticated yet: a flood of idle or stalled connections from one host
// cannot crowd out everyone else until their deadline.
const MaxPreAuthPerAddr = 32

// preAuthDeadline closes connections that have not authenticated within
// PreAuthTimeout (idle after the banner, stuck in key exchange, …), and
// refuses an address's connections beyond MaxPreAuthPerAddr.
func (s *Server) preAuthDeadline(ctx ssh.Context, conn net.Conn) net.Conn {
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	s.preAuthMu.Lock()
	if s.preAuth[host] >= MaxPreAuthPerAddr {
		s.preAuthMu.Unlock()
		s.cfg.Log.Warn("too many unauthenticated connections", "addr", host)
		return nil // gliderlabs/ssh closes it
	}
	s.preAuth[host]++
	s.preAuthMu.Unlock()
	var once sync.Once
	done := func() {
		once.Do(func() {
			s.preAuthMu.Lock()
			if s.preAuth[host]--; s.preAuth[host] <= 0 {
				delete(s.preAuth, host)
			}
			s.preAuthMu.Unlock()
		})
	}
	authed := &preAuthState{done: done}
	ctx.SetValue(ctxAuthed, authed)
	time.AfterFunc(s.cfg.PreAuthTimeout, func() {
		if !authed.ok.Load() {
			conn.Close()
		}
		done()
	})
	go func() {
		<-ctx.Done() // the connection ended
		done()
	}()
	return conn
}

// preAuthState tells the deadline that a connection authenticated, and
// gives its place back.
type preAuthState struct {
	ok   atomic.Bool
	done func()
}

// actor returns who signed this connection's authentication, looked up now:
// a key removed since the connection began no longer works.
func (s *Server) actor(ctx ssh.Context) (*skiff.Actor, error) {
	conn, ok := ctx.Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	if !ok || conn.Permissions == nil {
		return nil, skiff.ErrNotAuthorized
	}
	fp := conn.Permissions.Extensions[fingerprintExt]
	if fp == "" {
		return nil, skiff.ErrNotAuthorized
	}
	user, err := s.cfg.Users.FindUserByFingerprint(ctx, fp)
	if err != nil {
		return nil, skiff.ErrNotAuthorized
	}
	return &skiff.Actor{Name: user.Name, Fingerprint: fp, User: user}, nil
}
