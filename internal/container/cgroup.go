package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

// cgroupV2 reports whether the host runs the unified hierarchy only. Hybrid
// hosts (v2 mounted beside the v1 controllers, like Debian 11 and this
// project's CI) are driven through v1, as runc does.
func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers"))
	return err == nil
}

// What of cgroup v2 has run and what has not is in the README (cgroup v2);
// cgroup2.go has the layout and the parent's preparation.

// cgroupFS is a cgroup hierarchy as runc lays containers out in it: the
// host's, or in tests another mount (a hybrid host's v2 tree) or a copy of
// its files.
type cgroupFS struct {
	root string // mount point: v2's tree, or the directory of v1's per-controller mounts
	v2   bool
	// Tests stand in for the kernel's side of making a cgroup and of
	// writing its files (nil: the real thing).
	mkdirHook func(dir string) error
	writeHook func(path, value string) error
}

func hostCgroups() cgroupFS { return cgroupFS{root: cgroupRoot, v2: cgroupV2()} }

// Stats are a container's resource figures from its cgroup.
type Stats struct {
	CPU         time.Duration // CPU time used
	MemoryBytes int64         // current usage
	MemoryLimit int64         // 0: unlimited
	Pids        int64
	OOMKills    int64 // processes the kernel killed for memory
}

// cgroupStats reads the stats of cgroup path rel (the spec's cgroupsPath).
func cgroupStats(rel string) (Stats, error) { return hostCgroups().stats(rel) }

func (fs cgroupFS) stats(rel string) (Stats, error) {
	var st Stats
	var err error
	if fs.v2 {
		// Documentation/admin-guide/cgroup-v2.rst: memory.current and
		// memory.max ("max" when unlimited), the oom_kill count of
		// memory.events, pids.current, and cpu.stat's usage_usec (there
		// even without the cpu controller).
		dir := filepath.Join(fs.root, rel)
		st.MemoryBytes, err = readInt(filepath.Join(dir, "memory.current"))
		if err != nil {
			return st, err
		}
		if lim, err := readInt(filepath.Join(dir, "memory.max")); err == nil {
			st.MemoryLimit = lim
		}
		st.Pids, _ = readInt(filepath.Join(dir, "pids.current"))
		usec, _ := readKey(filepath.Join(dir, "cpu.stat"), "usage_usec")
		st.CPU = time.Duration(usec) * time.Microsecond
		st.OOMKills, _ = readKey(filepath.Join(dir, "memory.events"), "oom_kill")
		return st, nil
	}
	mem := filepath.Join(fs.root, "memory", rel)
	st.MemoryBytes, err = readInt(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return st, err
	}
	if lim, err := readInt(filepath.Join(mem, "memory.limit_in_bytes")); err == nil && lim < 1<<62 {
		st.MemoryLimit = lim
	}
	st.OOMKills, _ = readKey(filepath.Join(mem, "memory.oom_control"), "oom_kill")
	st.Pids, _ = readInt(filepath.Join(fs.root, "pids", rel, "pids.current"))
	ns, _ := readInt(filepath.Join(fs.root, "cpuacct", rel, "cpuacct.usage"))
	st.CPU = time.Duration(ns)
	return st, nil
}

// killCgroup kills every process in the cgroup.
func killCgroup(rel string) error { return hostCgroups().kill(rel) }

// kill kills every process in the cgroup rel: at once through cgroup.kill
// on v2 (Linux 5.14 and later), else by killFrozen.
func (fs cgroupFS) kill(rel string) error {
	if !fs.v2 {
		return fs.killFrozen(rel)
	}
	dir := filepath.Join(fs.root, rel)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil // gone already
	}
	err := writeCgroup(filepath.Join(dir, "cgroup.kill"), "1")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// No cgroup.kill before 5.14: Debian 11 runs v2 on 5.10.
	return fs.killFrozen(rel)
}

// killFrozen freezes the cgroup, so that nothing forks while its process
// list is read, SIGKILLs each process, and thaws it. v2's frozen processes
// die of SIGKILL at once, v1's when thawed.
func (fs cgroupFS) killFrozen(rel string) error {
	if !fs.v2 {
		state := filepath.Join(fs.root, "freezer", rel, "freezer.state")
		return freezeAndKill(freezer{state: state, freeze: "FROZEN", thaw: "THAWED",
			frozen: func() bool { return readTrim(state) == "FROZEN" },
		}, filepath.Join(fs.root, "pids", rel, "cgroup.procs"))
	}
	dir := filepath.Join(fs.root, rel)
	return freezeAndKill(freezer{state: filepath.Join(dir, "cgroup.freeze"), freeze: "1", thaw: "0",
		frozen: func() bool {
			v, _ := readKey(filepath.Join(dir, "cgroup.events"), "frozen")
			return v == 1
		},
	}, filepath.Join(dir, "cgroup.procs"))
}

// freezer is a cgroup's freezer: v1's freezer.state or v2's cgroup.freeze.
type freezer struct {
	state, freeze, thaw string
	frozen              func() bool
}

// freezeAndKill SIGKILLs every process listed in procs with the cgroup
// frozen (as far as it can be: without a freezer it goes on regardless),
// then thaws it, which lets frozen v1 processes die.
func freezeAndKill(fz freezer, procs string) error {
	if writeCgroup(fz.state, fz.freeze) == nil {
		defer func() { _ = writeCgroup(fz.state, fz.thaw) }() // a cgroup gone meanwhile has nothing to thaw
		// Freezing is asynchronous: wait until every process is frozen.
		for deadline := time.Now().Add(2 * time.Second); !fz.frozen() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	b, err := os.ReadFile(procs)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	return nil
}

// writeCgroup writes an existing cgroup file (never creating one).
func writeCgroup(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return string(bytes.TrimSpace(b))
}

// removeCgroup removes the cgroup directories of rel (runc delete does it
// too; this is for leftovers). Directories still holding processes stay.
func removeCgroup(rel string) error { return hostCgroups().remove(rel) }

func (fs cgroupFS) remove(rel string) error {
	var dirs []string
	if fs.v2 {
		dirs = []string{filepath.Join(fs.root, rel)}
	} else {
		ents, err := os.ReadDir(fs.root)
		if err != nil {
			return err
		}
		for _, e := range ents {
			dirs = append(dirs, filepath.Join(fs.root, e.Name(), rel))
		}
	}
	var errs []error
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && err != unix.ENOENT && err != unix.ENOTDIR {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

func (fs cgroupFS) list(parent string) []string {
	dir := filepath.Join(fs.root, parent)
	if !fs.v2 {
		dir = filepath.Join(fs.root, "pids", parent)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// readKey reads "key value" from a flat keyed cgroup file.
func readKey(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(30 * time.Second)
}
