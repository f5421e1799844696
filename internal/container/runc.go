package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IDMap maps container ids 0..Size-1 to host ids HostID.. for containers in
// a user namespace. One map serves every such container, so layers
// extracted once (shifted by HostID, see layer.Options.IDShift) serve all.
type IDMap struct{ HostID, Size uint32 }

// DefaultIDMap sits above the ranges distributions hand to users in
// /etc/subuid (100000 + 65536·n for the first few users): container root
// is host uid 1000000, the CNB user 1000 is host uid 1001000.
var DefaultIDMap = IDMap{HostID: 1000000, Size: 65536}

// Config configures a Runc.
type Config struct {
	Runc      string // the runc binary; default "runc" from PATH
	AllowRunc string // a runc build string to accept below the minimum version (see CheckRunc)
	// StateDir is runc's --root. Builds and app instances should use
	// different ones (and different CgroupParents), so that one's Cleanup
	// never touches the other's containers.
	StateDir     string
	CgroupParent string // cgroups are <parent>/<id>, or scopes in <parent>.slice (cgroup2.go); default "skiff"
	// CgroupDriver is "cgroupfs" or "systemd"; default systemd's where
	// systemd runs the unified hierarchy, else cgroupfs.
	CgroupDriver string
	Network      *Network // needed by containers with Spec.Network
	IDMap        IDMap    // for containers with Spec.UserNS; default DefaultIDMap
	Log          *slog.Logger
}

// Runc runs containers with the runc binary. It is safe for concurrent use.
type Runc struct {
	cfg       Config
	ver       RuncVersion
	exits     *exitWatcher
	closeOnce sync.Once
	log       *slog.Logger
	layout    cgroupLayout
	v2        bool // the unified hierarchy only
	swap      bool // v2: memory.swap.max exists (swap accounting)
}

// runcEnv is the whole environment runc runs with.
var runcEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// New checks the runc binary and returns a Runc. Close stops its watcher.
func New(ctx context.Context, cfg Config) (*Runc, error) {
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	bin, err := exec.LookPath(cfg.Runc)
	if err != nil {
		return nil, fmt.Errorf("runc: %w", err)
	}
	cfg.Runc = bin
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/skiff/runc"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "skiff"
	}
	if cfg.IDMap.Size == 0 {
		cfg.IDMap = DefaultIDMap
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	v, err := CheckRunc(ctx, bin, cfg.AllowRunc)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	r := &Runc{cfg: cfg, ver: v, log: cfg.Log, v2: cgroupV2()}
	r.layout = cgroupLayout{parent: strings.Trim(cfg.CgroupParent, "/")}
	switch cfg.CgroupDriver {
	case "systemd":
		r.layout.systemd = true
	case "", "cgroupfs":
		r.layout.systemd = cfg.CgroupDriver == "" && r.v2 && systemdBooted()
	default:
		return nil, fmt.Errorf("cgroup driver %q: use cgroupfs or systemd", cfg.CgroupDriver)
	}
	if r.v2 {
		fs := hostCgroups()
		if r.layout.systemd {
			r.swap = fs.swapAccounting(ownCgroup(), "system.slice", "init.scope")
		} else if r.swap, err = fs.prepareUnified(r.layout.parent); err != nil {
			return nil, err
		}
		if !r.swap {
			cfg.Log.Warn("no swap accounting (memory.swap.max): instances' memory limits cap RAM only, and they may swap beyond them where the host has swap")
		}
	}
	if r.exits, err = acquireExitWatcher(cfg.Log); err != nil {
		return nil, err
	}
	return r, nil
}

// Degraded says what works less well on this host than on a plain one
// (how container exits are learnt), for the daemon to say at start.
func (r *Runc) Degraded() []string { return r.exits.degraded() }

// Close stops watching for exits (the process's watcher stops with its
// last Runc). Containers keep running.
func (r *Runc) Close() error {
	r.closeOnce.Do(r.exits.release)
	return nil
}

// Version is the runc version in use.
func (r *Runc) Version() RuncVersion { return r.ver }

// Network is the network the containers join; nil without one.
func (r *Runc) Network() *Network { return r.cfg.Network }

// IDMap is the user namespace map containers with Spec.UserNS get.
func (r *Runc) IDMap() IDMap { return r.cfg.IDMap }

// cgroupPath is container id's cgroup below the hierarchy's root.
func (r *Runc) cgroupPath(id string) string { return r.layout.dir(id) }

// runc runs one runc command and returns its stdout; its stderr and log
// make the error.
func (r *Runc) runc(ctx context.Context, stdio *Stdio, args ...string) ([]byte, error) {
	return r.runcLog(ctx, stdio, "", args...)
}

// runcLog is runc with runc's own log going to logPath (when set), whose
// errors then make the error: with stdio handed over, runc's stderr is the
// container's.
func (r *Runc) runcLog(ctx context.Context, stdio *Stdio, logPath string, args ...string) ([]byte, error) {
	full := []string{"--root", r.cfg.StateDir}
	if r.layout.systemd {
		full = append(full, "--systemd-cgroup")
	}
	if logPath != "" {
		full = append(full, "--log", logPath, "--log-format", "json")
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, r.cfg.Runc, full...)
	cmd.Env = runcEnv
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	if stdio != nil {
		// Given to runc as they are: the container inherits them.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
		if stdio.Stdin == nil {
			cmd.Stdin = nil
		}
		if stdio.Stdout == nil {
			cmd.Stdout = nil
		}
		if stdio.Stderr == nil {
			cmd.Stderr = nil
		}
	} else {
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if logPath != "" {
			if m := lastLogError(logPath); m != "" {
				msg = m
			}
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("runc %s: %s", args[0], msg)
	}
	return stdout.Bytes(), nil
}

// Stdio are the files a container's init gets as its standard streams; nil
// means /dev/null. They are handed over, not copied: the daemon can go away
// and the container keeps writing (use FIFOs or files, not pipes the daemon
// reads, for containers that must outlive it).
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// Container is a created container.
type Container struct {
	ID, Bundle string
	Pid        int        // init's pid on the host
	Addr       netip.Addr // eth0's address; invalid without network
	Console    *os.File   // the pty master, for Spec.Terminal
	// Status is runc's word for an adopted container: "running",
	// "stopped" when its init has exited, or "created" when the process
	// that made it died before Start.
	Status string
	// Created is when the container was created: by Create, or as runc's
	// state records it for an adopted one (so it survives the daemon).
	Created time.Time
	r       *Runc
	w       *watch
}

// Create prepares s.Bundle, mounts the root file system and creates the
// container: its init waits for Start. On any error everything made so far
// is undone.
func (r *Runc) Create(ctx context.Context, s *Spec, stdio Stdio) (c *Container, err error) {
	if !ValidID(s.ID) {
		return nil, fmt.Errorf("invalid container id %q", s.ID)
	}
	if len(s.Args) == 0 {
		return nil, errors.New("container: no command")
	}
	if s.Network && r.cfg.Network == nil {
		return nil, errors.New("container: network asked for but not configured")
	}
	// 0711: runc reaches the rootfs as the container's (mapped) root.
	if err := os.MkdirAll(s.Bundle, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(s.Bundle, 0o711); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if derr := r.destroy(context.WithoutCancel(ctx), s.ID, s.Bundle); derr != nil {
				r.log.Warn("clean up a container that failed to start", "id", s.ID, "err", derr)
			}
		}
	}()
	rootPath, err := r.prepareRootfs(s)
	if err != nil {
		return nil, err
	}
	if s.User != "" {
		resolved, err := r.resolveUser(s, rootPath)
		if err != nil {
			return nil, err
		}
		s = resolved
	}
	if s.Init != "" && s.ExitDir != "" {
		if s, err = withExitDir(s); err != nil {
			return nil, err
		}
	}
	if err := r.chownMounts(s); err != nil {
		return nil, err
	}
	sp, err := r.ociSpec(s, rootPath, r.layout.runcPath(s.ID))
	if err != nil {
		return nil, err
	}
	cfg, err := json.MarshalIndent(sp, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.Bundle, "config.json"), cfg, 0o600); err != nil {
		return nil, err
	}
	pidFile := filepath.Join(s.Bundle, "init.pid")
	args := []string{"create", "--bundle", s.Bundle, "--pid-file", pidFile}
	var console *consoleSocket
	if s.Terminal {
		if console, err = newConsoleSocket(); err != nil {
			return nil, err
		}
		defer func() { _ = console.Close() }()
		args = append(args, "--console-socket", console.path)
	}
	args = append(args, s.ID)
	if _, err := r.runcLog(ctx, &stdio, filepath.Join(s.Bundle, "runc.log"), args...); err != nil {
		return nil, err
	}
	c = &Container{ID: s.ID, Bundle: s.Bundle, Created: time.Now(), r: r}
	if console != nil {
		if c.Console, err = console.receive(ctx); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				c.Console.Close()
			}
		}()
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil, err
	}
	if c.Pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if c.w, err = r.exits.watch(c.Pid); err != nil {
		return nil, err
	}
	if s.Network {
		if c.Addr, err = r.cfg.Network.attach(s.ID, c.Pid, s.Address, s.NetGroup); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	return c, nil
}

// Start runs the container's process.
func (c *Container) Start(ctx context.Context) error {
	_, err := c.r.runc(ctx, nil, "start", c.ID)
	return err
}

// Exited is closed when the container's init has exited.
func (c *Container) Exited() <-chan struct{} { return c.w.done }

// Wait waits for the container's init to exit.
func (c *Container) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-c.w.done:
		return c.w.status, nil
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Signal sends sig (a name like "TERM" or a number) to the container's init.
func (c *Container) Signal(ctx context.Context, sig string) error {
	_, err := c.r.runc(ctx, nil, "kill", c.ID, sig)
	return err
}

// Stop sends SIGTERM to init, waits up to grace, then kills every process
// of the container's cgroup, and returns how init ended.
func (c *Container) Stop(ctx context.Context, grace time.Duration) (ExitStatus, error) {
	select {
	case <-c.w.done:
		return c.w.status, nil
	default:
	}
	if err := c.Signal(ctx, "TERM"); err != nil {
		c.r.log.Debug("sigterm", "container", c.ID, "err", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.w.done:
		return c.w.status, nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = c.Kill() // it may have exited already: Wait tells
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return c.Wait(wctx)
}

// Kill kills every process in the container's cgroup at once.
func (c *Container) Kill() error {
	return killCgroup(c.r.cgroupPath(c.ID))
}

// Stats reads the container's cgroup figures.
func (c *Container) Stats() (Stats, error) { return cgroupStats(c.r.cgroupPath(c.ID)) }

// Resize sets the size of the container's terminal.
func (c *Container) Resize(cols, rows int) error {
	if c.Console == nil {
		return errors.New("container has no terminal")
	}
	return setWinsize(c.Console, cols, rows)
}

// Delete kills what is left of the container and removes everything it
// had on the host: runc state, cgroup, veth, mounts. The bundle directory
// itself (config.json, logs the caller keeps there) stays. Idempotent.
func (c *Container) Delete(ctx context.Context) error {
	if c.Console != nil {
		c.Console.Close()
	}
	return c.r.destroy(ctx, c.ID, c.Bundle)
}

func (r *Runc) destroy(ctx context.Context, id, bundle string) error {
	var errs []error
	var addr netip.Addr
	if r.cfg.Network != nil {
		addr, _ = r.cfg.Network.Addr(id) // while its veth is still there
	}
	if err := killCgroup(r.cgroupPath(id)); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.runc(ctx, nil, "delete", "--force", id); err != nil && !notExist(err) {
		errs = append(errs, err)
	}
	if r.cfg.Network != nil {
		if err := r.cfg.Network.detach(id, addr); err != nil {
			errs = append(errs, err)
		}
	}
	// runc removes the cgroup; this catches a container runc never knew.
	if err := removeCgroup(r.cgroupPath(id)); err != nil {
		errs = append(errs, err)
	}
	if bundle != "" {
		if err := releaseRootfs(bundle); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func notExist(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "not exist"))
}

// State is runc's view of a container.
type State struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"` // creating, created, running, paused, stopped
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// List returns the containers in this Runc's state directory.
func (r *Runc) List(ctx context.Context) ([]State, error) {
	out, err := r.runc(ctx, nil, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var states []State
	if err := json.Unmarshal(bytes.TrimSpace(out), &states); err != nil && len(bytes.TrimSpace(out)) > 0 {
		return nil, fmt.Errorf("runc list: %w", err)
	}
	return states, nil
}

// Adopt takes over a container created earlier (by this process or one
// before it). A container whose init has exited is returned with Exited
// closed.
func (r *Runc) Adopt(ctx context.Context, id string) (*Container, error) {
	out, err := r.runc(ctx, nil, "state", id)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("runc state %s: %w", id, err)
	}
	c := &Container{ID: id, Bundle: st.Bundle, Pid: st.Pid, Status: st.Status, Created: st.Created, r: r}
	if r.cfg.Network != nil {
		c.Addr, _ = r.cfg.Network.Addr(id)
	}
	if st.Status == "stopped" || st.Pid == 0 {
		c.w = &watch{done: make(chan struct{}), status: ExitStatus{Code: -1}}
		close(c.w.done)
		return c, nil
	}
	if c.w, err = r.exits.watch(st.Pid); err != nil {
		// Gone between state and pidfd_open.
		c.w = &watch{done: make(chan struct{}), status: ExitStatus{Code: -1}}
		close(c.w.done)
	}
	return c, nil
}

// Cleanup removes every container of this Runc for which keep returns
// false, and leftovers no runc state knows: cgroups under the parent,
// mounts in bundles under bundleRoot (bundles named by container id), and
// veths. Each removal is logged; the first errors are returned.
func (r *Runc) Cleanup(ctx context.Context, bundleRoot string, keep func(id string) bool) error {
	states, err := r.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	known := map[string]bool{}
	for _, st := range states {
		known[st.ID] = true
		if keep(st.ID) {
			continue
		}
		r.log.Info("removing unknown container", "id", st.ID, "status", st.Status)
		if err := r.destroy(ctx, st.ID, st.Bundle); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range r.layout.ids(hostCgroups()) {
		if !known[id] && !keep(id) {
			r.log.Info("removing leftover cgroup", "id", id)
			_ = killCgroup(r.cgroupPath(id)) // removeCgroup reports a cgroup that still has processes
			if err := removeCgroup(r.cgroupPath(id)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if bundleRoot != "" {
		ents, _ := os.ReadDir(bundleRoot)
		for _, e := range ents {
			if !e.IsDir() || known[e.Name()] || keep(e.Name()) {
				continue
			}
			if err := releaseRootfs(filepath.Join(bundleRoot, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// lastLogError returns the last error message in a runc JSON log.
func lastLogError(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var msg string
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			msg = e.Msg
		}
	}
	return msg
}
