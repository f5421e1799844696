package container

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Spec describes one container.
type Spec struct {
	ID     string // letters, digits, '-', '_', '.'; at most 64
	Bundle string // a directory the caller owns; Create fills it, Delete empties its mounts
	Rootfs Rootfs

	Args []string
	// Init is the host path of an init program (cmd/skiff-init) to run as
	// the container's first process, in front of Args: bind-mounted
	// read-only at InitPath, it forwards signals to the app and reaps
	// orphans. Its directories must be traversable by the container's
	// root. Empty: Args[0] is the first process.
	Init string
	// ExitDir, with Init, is a host directory where Init records the
	// app's exit status when it ends (ReadExitFile reads it): how a
	// daemon that was not running then learns how a container ended. It
	// is mounted at ExitDirPath and handed to the container's user.
	ExitDir   string
	Env       []string // KEY=VALUE, passed as is (never through a file that is parsed)
	Cwd       string   // default "/"
	UID, GID  uint32   // inside the container
	ExtraGIDs []uint32
	// User, when set, replaces UID, GID and ExtraGIDs: an image config's
	// user ("name", "name:group", "uid:group"…) looked up in the root
	// file system's /etc/passwd and /etc/group once it is mounted, without
	// following any symlink out of it. An unknown name is an error that
	// wraps ErrUnknownUser or ErrUnknownGroup.
	User     string
	Terminal bool     // allocate a pty; Create returns its master
	Caps     []string // e.g. "CAP_CHOWN"; none by default
	Hostname string   // default: the ID
	UserNS   bool     // map ids through Config.IDMap
	Network  bool     // give the container a veth from Config.Network
	// Address, when valid, is the container's fixed address (with
	// Network): a service's, in the network's ServicePool, reachable only
	// from the groups linked to it (Network.Link).
	Address netip.Addr
	// NetGroup is the group the container's address belongs to while it
	// runs (an app: its instances, one-off and cron runs); a service
	// linked to the group accepts it.
	NetGroup    string
	Limits      Limits
	Mounts      []Mount
	NoFile      uint64 // RLIMIT_NOFILE, default 65536
	ReadonlyDir bool   // for Rootfs.Dir: mount it read-only
	// Links are symlinks made at the top of a layered root file system
	// (in its writable layer) where the image has nothing of that name:
	// "/app" → "/workspace". Names are single top-level entries.
	Links map[string]string
}

// Rootfs is either a directory used as is, or overlay layers.
type Rootfs struct {
	Dir string
	// Layers are overlay lowerdirs, bottom first (image order). An upper
	// and work dir are made in the bundle, on a tmpfs of UpperSize bytes
	// when UpperSize is set (that caps what the container can write).
	Layers    []string
	UpperSize int64
}

// Limits are the container's cgroup limits; zero means unlimited.
type Limits struct {
	MemoryBytes int64
	CPU         float64 // cores, e.g. 0.5
	Pids        int64
}

// Mount is a bind mount from the host into the container.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
	// Owned hands the source, a directory, to the container's process
	// user (through the id map) before the container starts, so that the
	// app's unprivileged user can write it: a volume. Only the directory
	// itself changes owner, never what is in it.
	Owned bool
}

// InitPath is where Spec.Init appears in the container: under /dev, which
// is always the runtime's own tmpfs, so it shadows nothing of the image and
// needs no writable root.
const InitPath = "/dev/init"

// ExitDirPath is where Spec.ExitDir appears in the container.
const ExitDirPath = "/dev/skiff-exit"

const exitFileName = "status"

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidID reports whether id can name a container.
func ValidID(id string) bool { return idRE.MatchString(id) }

// maskedPaths and readonlyPaths hide what a container must not read or
// write in /proc and /sys (the list runc and Docker use).
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap", "/proc/interrupts",
}

var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// ociSpec builds the runtime spec for s, with its root file system at
// rootPath and its cgroup at cgroupsPath.
func (r *Runc) ociSpec(s *Spec, rootPath, cgroupsPath string) (*specs.Spec, error) {
	cwd := s.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !strings.HasPrefix(cwd, "/") {
		return nil, fmt.Errorf("working directory %q is not absolute", cwd)
	}
	host := s.Hostname
	if host == "" {
		host = s.ID
	}
	nofile := s.NoFile
	if nofile == 0 {
		nofile = 65536
	}
	// A user namespace cannot raise the hard limit above runc's own.
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Max < nofile {
		nofile = lim.Max
	}
	caps := append([]string(nil), s.Caps...)
	args := s.Args
	if s.Init != "" && s.ExitDir != "" {
		args = append([]string{InitPath, "--exit-file", ExitDirPath + "/" + exitFileName, "--"}, s.Args...)
	} else if s.Init != "" {
		args = append([]string{InitPath, "--"}, s.Args...)
	}
	sp := &specs.Spec{
		// runc 1.1 speaks 1.0.2; nothing newer is used.
		Version:  "1.0.2",
		Hostname: host,
		Root:     &specs.Root{Path: rootPath, Readonly: s.Rootfs.Dir != "" && s.ReadonlyDir},
		Process: &specs.Process{
			Terminal:        s.Terminal,
			User:            specs.User{UID: s.UID, GID: s.GID, AdditionalGids: s.ExtraGIDs},
			Args:            args,
			Env:             s.Env,
			Cwd:             cwd,
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.NetworkNamespace},
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Resources:     resources(s.Limits, r.v2, r.swap),
		},
	}
	for _, m := range s.Mounts {
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		sp.Mounts = append(sp.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	if s.Init != "" {
		sp.Mounts = append(sp.Mounts, specs.Mount{Destination: InitPath, Type: "bind", Source: s.Init,
			Options: []string{"bind", "nosuid", "nodev", "ro"}})
	}
	if s.UserNS {
		m := r.cfg.IDMap
		sp.Linux.Namespaces = append(sp.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		sp.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.HostID, Size: m.Size}}
		sp.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.HostID, Size: m.Size}}
	}
	prof, err := seccomp.GetDefaultProfile(sp)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	sp.Linux.Seccomp = nativeOnly(prof)
	return sp, nil
}

// nativeOnly keeps the profile's filter to the host's own architecture:
// the default profile also lists its compatible ones (x86 and x32 beside
// x86_64), each a copy of the filter that runc compiles and the kernel
// loads at every create (15 to 20 ms of it on a loaded host). A syscall
// of another architecture (a 32-bit binary's int 0x80) then meets the
// filter's bad-architecture action and kills its thread: buildpacks,
// apps and services here are built for the host.
func nativeOnly(prof *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	if len(prof.Architectures) > 1 {
		prof.Architectures = prof.Architectures[:1]
	}
	return prof
}

// resources are the spec's limits. On v2 an instance gets no swap beyond
// its memory limit where the host accounts swap (memory.swap.max; runc
// fails to make the cgroup when it is asked for one that is missing), and
// an OOM kill takes the whole instance.
func resources(l Limits, v2, swap bool) *specs.LinuxResources {
	res := &specs.LinuxResources{
		// Only the devices runc always creates are allowed.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if l.MemoryBytes > 0 {
		m := l.MemoryBytes
		res.Memory = &specs.LinuxMemory{Limit: &m}
		if v2 {
			// runc maps swap = limit to memory.swap.max 0. On v1 these
			// need swap accounting, which hosts often lack.
			if swap {
				res.Memory.Swap = &m
			}
			res.Unified = map[string]string{"memory.oom.group": "1"}
		}
	}
	if l.CPU > 0 {
		period := uint64(100000)
		quota := int64(l.CPU * float64(period))
		res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if l.Pids > 0 {
		p := l.Pids
		res.Pids = &specs.LinuxPids{Limit: &p}
	}
	return res
}

// withExitDir returns s with its ExitDir made, emptied of an earlier
// run's status, and mounted for Init.
func withExitDir(s *Spec) (*Spec, error) {
	if err := os.MkdirAll(s.ExitDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(s.ExitDir, exitFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	c := *s
	c.Mounts = append(slices.Clone(s.Mounts), Mount{Source: s.ExitDir, Destination: ExitDirPath, Owned: true})
	return &c, nil
}

// ReadExitFile returns the exit status Init recorded in a container's
// ExitDir; ok is false when it recorded none (the container still runs,
// or died with its init), and the status is then unknown (Code -1).
func ReadExitFile(dir string) (st ExitStatus, ok bool) {
	unknown := ExitStatus{Code: -1}
	b, err := os.ReadFile(filepath.Join(dir, exitFileName))
	if err != nil {
		return unknown, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 255 {
		return unknown, false
	}
	return ExitStatus{Code: n, Known: true}, true
}
