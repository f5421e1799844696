package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/control"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/gitserver"
	"github.com/skiffhq/skiff/store"
)

// Config is the daemon's configuration, from flags with environment
// fallbacks, validated once by parseServe.
type Config struct {
	DataDir      string
	SSHAddr      string
	HTTPAddr     string
	HTTPSAddr    string
	Domain       string
	MaxPushBytes int64
	HookCommand  string // the skiff binary git runs as its hook

	SSHPreAuthTimeout time.Duration
	SSHIdleTimeout    time.Duration
}

func parseServe(dataDir string, args []string) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data", dataDir, "data directory (env SKIFF_DATA)")
	fs.StringVar(&cfg.SSHAddr, "ssh-addr", envOr("SKIFF_SSH_ADDR", ":2222"), "SSH listen address (env SKIFF_SSH_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr("SKIFF_HTTP_ADDR", ":80"), "HTTP listen address (env SKIFF_HTTP_ADDR)")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", envOr("SKIFF_HTTPS_ADDR", ":443"), "HTTPS listen address (env SKIFF_HTTPS_ADDR)")
	fs.StringVar(&cfg.Domain, "domain", envOr("SKIFF_DOMAIN", "localhost"), "base domain: apps answer at <app>.<domain> (env SKIFF_DOMAIN)")
	fs.DurationVar(&cfg.SSHPreAuthTimeout, "ssh-preauth-timeout", 20*time.Second, "close SSH connections that have not authenticated by then")
	fs.DurationVar(&cfg.SSHIdleTimeout, "ssh-idle-timeout", 10*time.Minute, "close SSH connections idle for this long")
	maxPush := fs.String("max-push-size", envOr("SKIFF_MAX_PUSH_SIZE", "1g"), "largest pack a push may send (env SKIFF_MAX_PUSH_SIZE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.MaxPushBytes, err = parseSize(*maxPush); err != nil {
		return nil, fmt.Errorf("--max-push-size: %w", err)
	}
	cfg.Domain = strings.TrimSuffix(strings.ToLower(cfg.Domain), ".")
	if cfg.Domain == "" {
		return nil, errors.New("--domain must not be empty")
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.HookCommand, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find the skiff binary: %w", err)
	}
	if cfg.HookCommand, err = filepath.EvalSymlinks(cfg.HookCommand); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseSize reads sizes like 512m, 1g, 1048576.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want a number with an optional k, m or g)", s)
	}
	return n * mult, nil
}

func serve(dataDir string, args []string) int {
	cfg, err := parseServe(dataDir, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "skiff serve: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signalContext()
	defer stop()
	m := &Main{Config: cfg, Log: log}
	if err := m.Run(ctx); err != nil {
		log.Error("skiff serve", "err", err)
		m.Close()
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := m.Close(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// Main is the running daemon: Run starts it, Close stops it. Tests use it
// to run a daemon in-process.
type Main struct {
	Config *Config
	Log    *slog.Logger

	db      *store.DB
	ssh     *gitserver.Server
	control *control.Server
	http    []*http.Server
	closers []func() error
}

// Ready is what DATA/ready.json says once the daemon serves.
type Ready struct {
	SSH     string `json:"ssh"`
	HTTP    string `json:"http"`
	HTTPS   string `json:"https"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
}

// Run opens the state, binds every listener, starts serving, and writes
// ready.json. It returns once the daemon is up.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	for _, dir := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "repos"), filepath.Join(cfg.DataDir, "logs")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
	}
	os.Remove(filepath.Join(cfg.DataDir, "ready.json"))

	// The control socket comes first: it refuses to start a second daemon
	// on the same data directory before anything else is touched.
	socket := filepath.Join(cfg.DataDir, "control.sock")
	controlListener, err := control.Listen(socket)
	if err != nil {
		return err
	}
	m.closers = append(m.closers, controlListener.Close)

	db, err := store.Open(ctx, filepath.Join(cfg.DataDir, "skiff.db"))
	if err != nil {
		return err
	}
	m.db = db
	hostKey, err := gitserver.LoadOrCreateHostKey(filepath.Join(cfg.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		return err
	}
	repos, err := gitserver.NewRepos(filepath.Join(cfg.DataDir, "repos"))
	if err != nil {
		return err
	}

	pipeline := deploy.New(deploy.Config{Apps: db, Pushes: db, Events: db, Repos: repos, Log: m.Log.With("component", "deploy")})
	sshListener, err := net.Listen("tcp", cfg.SSHAddr)
	if err != nil {
		return fmt.Errorf("listen for SSH on %s: %w", cfg.SSHAddr, err)
	}
	info := admin.Info{SSHHost: cfg.Domain + portSuffix(sshListener.Addr()), Domain: cfg.Domain}
	commands := admin.New(admin.Services{Apps: db, Users: db, Access: db, Events: db, Pushes: db, Deployer: pipeline}, info, m.Log.With("component", "admin"))
	m.ssh, err = gitserver.New(gitserver.Config{
		HostKey: hostKey, Users: db, Apps: db, Access: db, Deployer: pipeline, Commands: commands, Repos: repos,
		Log:         m.Log.With("component", "ssh"),
		HookCommand: cfg.HookCommand, HooksDir: filepath.Join(cfg.DataDir, "hooks"), ControlSocket: socket,
		MaxPushBytes: cfg.MaxPushBytes, PreAuthTimeout: cfg.SSHPreAuthTimeout, IdleTimeout: cfg.SSHIdleTimeout,
	})
	if err != nil {
		sshListener.Close()
		return err
	}
	m.control = &control.Server{Commands: commands, Hooks: m.ssh, Log: m.Log.With("component", "control")}

	httpListener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		sshListener.Close()
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	httpsListener, err := net.Listen("tcp", cfg.HTTPSAddr)
	if err != nil {
		sshListener.Close()
		httpListener.Close()
		return fmt.Errorf("listen for HTTPS on %s: %w", cfg.HTTPSAddr, err)
	}

	go m.control.Serve(controlListener)
	go func() {
		if err := m.ssh.Serve(sshListener); err != nil {
			m.Log.Error("ssh server", "err", err)
		}
	}()
	m.serveHTTP(httpListener, httpsListener)

	ready := Ready{SSH: sshListener.Addr().String(), HTTP: httpListener.Addr().String(), HTTPS: httpsListener.Addr().String(), PID: os.Getpid(), Version: skiff.Version}
	if err := writeJSONAtomic(filepath.Join(cfg.DataDir, "ready.json"), ready); err != nil {
		return err
	}
	m.Log.Info("skiff is up", "version", skiff.Version, "data", cfg.DataDir, "ssh", ready.SSH, "http", ready.HTTP, "https", ready.HTTPS, "domain", cfg.Domain)
	return nil
}

// serveHTTP answers HTTP until the router takes these listeners over:
// every host is unknown for now.
func (m *Main) serveHTTP(plain, tlsL net.Listener) {
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 no app is deployed at this address", http.StatusNotFound)
	})
	srv := &http.Server{Handler: notFound, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	m.http = append(m.http, srv)
	go srv.Serve(plain)
	m.closers = append(m.closers, tlsL.Close) // TLS arrives with the router
}

// Close stops the daemon: new connections stop at once, pushes in flight
// get a grace period, then everything is closed.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m.Config != nil {
		os.Remove(filepath.Join(m.Config.DataDir, "ready.json"))
	}
	var errs []error
	if m.ssh != nil {
		m.ssh.Shutdown(ctx)
	}
	for _, s := range m.http {
		s.Shutdown(ctx)
	}
	if m.control != nil {
		m.control.Close()
	}
	for _, c := range m.closers {
		c()
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
	}
	return errors.Join(errs...)
}

func portSuffix(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.Port != 22 {
		return ":" + strconv.Itoa(t.Port)
	}
	return ""
}

func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
