package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sandbox runs one process tree in isolation and waits for it. It is the
// one place where builds meet the container runtime, so that moving to
// internal/container is a change of this file only.
type Sandbox interface {
	// Run runs spec, copying the process's stdout and stderr (merged) to
	// out. It returns the exit status; when ctx ends first it kills every
	// process of the sandbox and returns ctx's error. Nothing is left
	// running or mounted when it returns.
	Run(ctx context.Context, spec *SandboxSpec, out io.Writer) (int, error)
}

// SandboxSpec describes a sandboxed process.
type SandboxSpec struct {
	ID     string // unique among running sandboxes
	Rootfs string // mounted read-only
	Args   []string
	Env    []string
	Cwd    string
	Mounts []Mount
	// UIDBase maps root of the sandbox's user namespace to this host uid
	// (and gid), with 65536 ids.
	UIDBase      int
	Capabilities []string // bounding, effective and permitted set
	Limits       Limits
	// Tmpfs lists writable in-memory directories (e.g. /tmp, /home).
	Tmpfs []string
}

// Mount is a bind mount into the sandbox.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
}

// runcSandbox runs sandboxes with runc run, in the foreground.
type runcSandbox struct {
	runc string
	log  *slog.Logger
}

// runcRoot keeps build containers' runc state apart from app instances'.
const runcRoot = "/run/skiff/runc-builds"

func (r *runcSandbox) Run(ctx context.Context, s *SandboxSpec, out io.Writer) (int, error) {
	bundle, err := os.MkdirTemp("", "skiff-bundle-")
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(bundle)
	if err := os.Chmod(bundle, 0o711); err != nil {
		return -1, err
	}
	b, err := json.MarshalIndent(ociSpec(s), "", " ")
	if err != nil {
		return -1, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		return -1, err
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	// exec.CommandContext would kill runc alone; the tree is killed below.
	cmd := exec.Command(r.runc, "--root", runcRoot, "run", "--bundle", bundle, s.ID)
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start runc: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		// SIGKILL to the pid namespace's init takes every process in it.
		r.runcCmd(env, "kill", s.ID, "KILL")
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		r.runcCmd(env, "delete", "--force", s.ID)
		return -1, ctx.Err()
	}
	r.runcCmd(env, "delete", "--force", s.ID)
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		return ee.ExitCode(), nil
	} else if runErr != nil {
		return -1, fmt.Errorf("runc: %w", runErr)
	}
	return 0, nil
}

func (r *runcSandbox) runcCmd(env []string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.runc, append([]string{"--root", runcRoot}, args...)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil && !strings.Contains(stderr.String(), "does not exist") {
		r.log.Debug("runc", "args", args, "err", err, "stderr", strings.TrimSpace(stderr.String()))
	}
}

func ociSpec(s *SandboxSpec) *specs.Spec {
	period := uint64(100000)
	quota := int64(s.Limits.CPUs * float64(period))
	mem := s.Limits.Memory
	pids := s.Limits.Pids
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
	}
	for _, t := range s.Tmpfs {
		mounts = append(mounts, specs.Mount{Destination: t, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=1g"}})
	}
	for _, m := range s.Mounts {
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			Args: s.Args, Env: s.Env, Cwd: s.Cwd,
			User:            specs.User{UID: 0, GID: 0},
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: s.Capabilities, Effective: s.Capabilities, Permitted: s.Capabilities,
			},
		},
		Root:     &specs.Root{Path: s.Rootfs, Readonly: true},
		Hostname: "build",
		Mounts:   mounts,
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(s.UIDBase), Size: 65536}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(s.UIDBase), Size: 65536}},
			CgroupsPath: "/skiff/builds/" + s.ID,
			Resources: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: &mem, Swap: &mem},
				CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:   &specs.LinuxPids{Limit: &pids},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.UserNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}
