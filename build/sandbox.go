package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/container"
)

// sandboxSpec describes one lifecycle run.
type sandboxSpec struct {
	ID       string // container id: unique among running builds
	Bundle   string // a directory of the build's scratch space
	Rootfs   string // the builder's, mounted read-only
	Args     []string
	Env      []string
	Cwd      string
	Mounts   []container.Mount
	Caps     []string
	Limits   Limits
	Network  bool
	NetGroup string // the network group the build's address joins (links to services may admit it)
	Started  func() // called once the container runs (tests wait on it)
	// Mark, when set, is called at the end of each of the sandbox's steps
	// (create, start, lifecycle, delete), for the build's timing line.
	Mark func(step string)
	// BeforeStart, when set, runs once the container is created, before
	// its process starts; an error stops the build there and is returned.
	BeforeStart func() error
	Deadline    time.Duration
}

// sandbox runs builds as containers of internal/container: their own
// runc state directory and cgroup parent (Config.StateDir, CgroupParent),
// so that builds and app instances never clean up each other's containers,
// and a user namespace of their own (Config.UIDBase) whose ids are no host
// user's.
type sandbox struct {
	cfg  container.Config
	log  *slog.Logger
	mu   sync.Mutex
	runc *container.Runc
}

// get checks runc and sets up the containers' Runc on first use (so that
// a Platform can be made where runc is missing, as in the fast tests). A
// failure is not kept: the next build tries again.
func (s *sandbox) get(ctx context.Context) (*container.Runc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runc != nil {
		return s.runc, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	r, err := container.New(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	s.runc = r
	return r, nil
}

// run runs spec to its end, copying its merged stdout and stderr to out,
// and returns the exit code. When ctx ends first, every process of the
// build is killed and ctx's error returned. When it returns, every process
// of the build has been killed and its output copied; what is left of the
// container on the host (runc's state, its cgroup, its veth and address,
// the bundle's mounts) goes when the returned remove is called, which the
// caller does once, possibly later and in another goroutine: the push need
// not wait for it. A daemon killed before remove ran leaves the container
// to Platform.Cleanup at the next start. remove is never nil.
func (s *sandbox) run(ctx context.Context, spec *sandboxSpec, out io.Writer) (code int, remove func(), err error) {
	remove = func() {}
	r, err := s.get(ctx)
	if err != nil {
		return -1, remove, fmt.Errorf("build sandbox: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, remove, err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, pr) // to the build's output: a reader gone is the build's end
		pr.Close()
	}()
	waitCopy := func() {
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
			pr.Close() // a stray holder of the pipe; the container is gone
			<-copied
		}
	}
	c, err := r.Create(ctx, &container.Spec{
		ID: spec.ID, Bundle: spec.Bundle,
		Rootfs: container.Rootfs{Dir: spec.Rootfs}, ReadonlyDir: true,
		Args: spec.Args, Env: spec.Env, Cwd: spec.Cwd,
		Caps: spec.Caps, Hostname: "build", UserNS: true, Network: spec.Network, NetGroup: spec.NetGroup,
		Mounts: spec.Mounts,
		Limits: container.Limits{MemoryBytes: spec.Limits.Memory, CPU: spec.Limits.CPUs, Pids: spec.Limits.Pids},
	}, container.Stdio{Stdout: pw, Stderr: pw})
	pw.Close() // the container holds its own copy
	if err != nil {
		waitCopy() // Create removed what it had made
		return -1, remove, fmt.Errorf("create build container: %w", err)
	}
	mark := func(step string) {
		if spec.Mark != nil {
			spec.Mark(step)
		}
	}
	mark("create")
	remove = func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := c.Delete(dctx); err != nil {
			s.log.Warn("delete build container", "id", spec.ID, "err", err)
		}
	}
	defer func() {
		// The container's processes die now if its init has not exited
		// (a failed start): its output then ends. An init that exited took
		// the rest of its pid namespace with it. The container's removal
		// is remove's.
		select {
		case <-c.Exited():
		default:
			if err := c.Kill(); err != nil {
				s.log.Warn("kill build container", "id", spec.ID, "err", err)
			}
		}
		waitCopy()
	}()
	if spec.BeforeStart != nil {
		if err := spec.BeforeStart(); err != nil {
			return -1, remove, err
		}
	}
	if err := c.Start(ctx); err != nil {
		return -1, remove, fmt.Errorf("start build container: %w", err)
	}
	mark("start")
	if spec.Started != nil {
		spec.Started()
	}
	st, err := c.Wait(ctx)
	mark("lifecycle")
	if err != nil {
		// The whole cgroup goes at once: a fork bomb or a daemonized child
		// cannot outlive the build.
		_ = c.Kill() // it may have exited already; Wait tells
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, _ = c.Wait(wctx)
		cancel()
		return -1, remove, ctx.Err()
	}
	if !st.Known {
		return -1, remove, errors.New("build container exited with an unknown status")
	}
	return st.Code, remove, nil
}

// Cleanup removes build containers, cgroups and scratch space left by a
// skiff that stopped in the middle of builds. Call it once at start, before
// any build.
func (p *Platform) Cleanup(ctx context.Context) error {
	r, err := p.sandbox.get(ctx)
	if err != nil {
		return err
	}
	var errs []error
	if err := r.Cleanup(ctx, "", func(string) bool { return false }); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, RemoveScratch(p.cfg.DataDir))
	return errors.Join(errs...)
}

// RemoveScratch removes what builds cut short (a daemon killed with
// kill -9, say) left in DATA/tmp/builds: each build's cache overlay and
// other mounts are unmounted first, so that removing the directory never
// reaches through a mount into the build cache or the builder. A directory
// that stays mounted is left. For a daemon's start, with no build running,
// and for teardown.
func RemoveScratch(dataDir string) error {
	dir := filepath.Join(dataDir, "tmp", "builds")
	ents, _ := os.ReadDir(dir)
	var errs []error
	for _, e := range ents {
		if err := unmountUnder(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close waits until every build has settled (settle.go), then stops
// watching build containers' exits. Call it after the last build has
// returned.
func (p *Platform) Close() error {
	p.settles.Wait()
	p.sandbox.mu.Lock()
	defer p.sandbox.mu.Unlock()
	if p.sandbox.runc == nil {
		return nil
	}
	err := p.sandbox.runc.Close()
	p.sandbox.runc = nil
	return err
}
