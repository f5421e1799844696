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

// Stats are a container's resource figures from its cgroup.
type Stats struct {
	CPU         time.Duration // CPU time used
	MemoryBytes int64         // current usage
	MemoryLimit int64         // 0: unlimited
	Pids        int64
	OOMKills    int64 // processes the kernel killed for memory
}

// cgroupStats reads the stats of cgroup path rel (the spec's cgroupsPath).
func cgroupStats(rel string) (Stats, error) {
	var st Stats
	var err error
	if cgroupV2() {
		dir := filepath.Join(cgroupRoot, rel)
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
	mem := filepath.Join(cgroupRoot, "memory", rel)
	st.MemoryBytes, err = readInt(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return st, err
	}
	if lim, err := readInt(filepath.Join(mem, "memory.limit_in_bytes")); err == nil && lim < 1<<62 {
		st.MemoryLimit = lim
	}
	st.OOMKills, _ = readKey(filepath.Join(mem, "memory.oom_control"), "oom_kill")
	st.Pids, _ = readInt(filepath.Join(cgroupRoot, "pids", rel, "pids.current"))
	ns, _ := readInt(filepath.Join(cgroupRoot, "cpuacct", rel, "cpuacct.usage"))
	st.CPU = time.Duration(ns)
	return st, nil
}

// killCgroup kills every process in the cgroup: cgroup.kill on v2; on v1,
// freeze so nothing can fork while the list is read, SIGKILL all, thaw.
func killCgroup(rel string) error {
	if cgroupV2() {
		err := os.WriteFile(filepath.Join(cgroupRoot, rel, "cgroup.kill"), []byte("1"), 0)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// Kernels before 5.14 have no cgroup.kill: fall through to signals.
	}
	freezer := filepath.Join(cgroupRoot, "freezer", rel, "freezer.state")
	frozen := os.WriteFile(freezer, []byte("FROZEN"), 0) == nil
	defer func() {
		if frozen {
			os.WriteFile(freezer, []byte("THAWED"), 0)
		}
	}()
	procs := filepath.Join(cgroupRoot, "pids", rel, "cgroup.procs")
	if cgroupV2() {
		procs = filepath.Join(cgroupRoot, rel, "cgroup.procs")
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

// removeCgroup removes the cgroup directories of rel (runc delete does it
// too; this is for leftovers). Directories still holding processes stay.
func removeCgroup(rel string) error {
	var dirs []string
	if cgroupV2() {
		dirs = []string{filepath.Join(cgroupRoot, rel)}
	} else {
		ents, err := os.ReadDir(cgroupRoot)
		if err != nil {
			return err
		}
		for _, e := range ents {
			dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), rel))
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

// listCgroups returns the names of the cgroups directly under parent.
func listCgroups(parent string) []string {
	dir := filepath.Join(cgroupRoot, parent)
	if !cgroupV2() {
		dir = filepath.Join(cgroupRoot, "pids", parent)
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
