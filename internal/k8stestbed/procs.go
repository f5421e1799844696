package k8stestbed

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The test bed puts every process it starts into one cgroup tree of its
// own, /<name> in each hierarchy: its daemons in /<name>/daemons (and the
// containerd shims they fork with them), each kubelet's pods under
// /<name>/<node> (the kubelet's cgroupRoot). Stopping kills the whole tree,
// so nothing it started survives, however it was forked.

const cgroupFS = "/sys/fs/cgroup"

// unified reports whether the host has only cgroup v2.
func unified() bool {
	_, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers"))
	return err == nil
}

// hierarchies lists the mounted cgroup hierarchies (v1 controllers, the
// named systemd one and the unified one of a hybrid host), or just the
// root on a v2 host.
func hierarchies() []string {
	if unified() {
		return []string{cgroupFS}
	}
	entries, _ := os.ReadDir(cgroupFS)
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupFS, e.Name())
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// trackingDir is the hierarchy that tells which processes are ours: the
// freezer on v1 (so the tree can be frozen before it is killed), the root
// on v2.
func trackingDir() string {
	if unified() {
		return cgroupFS
	}
	return filepath.Join(cgroupFS, "freezer")
}

// makeCgroup creates /<rel> in every hierarchy, giving cpuset directories
// their parent's CPUs and memory nodes (an empty cpuset accepts no task).
func makeCgroup(rel string) error {
	for _, h := range hierarchies() {
		dir := h
		for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
			if !unified() && filepath.Base(h) == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if cur, _ := os.ReadFile(filepath.Join(dir, f)); len(bytes.TrimSpace(cur)) > 0 {
						continue
					}
					v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
					if err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
						return fmt.Errorf("cgroup %s: %w", f, err)
					}
				}
			}
		}
	}
	return nil
}

// command makes a process that joins the tracking cgroup rel before it
// runs argv (so nothing it forks escapes), logs to logFile and dies with
// the test process.
func command(rel, logFile string, env []string, argv ...string) (*exec.Cmd, error) {
	procs := filepath.Join(trackingDir(), rel, "cgroup.procs")
	script := `echo $$ > "$0" && exec "$@"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, procs}, argv...)...)
	cmd.Env = env
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// cgroupTree lists rel and every cgroup below it in dir, deepest first.
func cgroupTree(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// pidsIn lists the processes in the cgroup dir and below.
func pidsIn(dir string) []int {
	var pids []int
	for _, d := range cgroupTree(dir) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// killCgroup kills every process in /<rel> and below and removes the
// cgroups from every hierarchy. On v1 the tree is frozen first, so a
// process cannot fork a child between the listing and the kill.
func killCgroup(rel string) error {
	track := filepath.Join(trackingDir(), rel)
	if _, err := os.Stat(track); os.IsNotExist(err) {
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if unified() {
			_ = os.WriteFile(filepath.Join(track, "cgroup.kill"), []byte("1"), 0o644)
		} else {
			_ = os.WriteFile(filepath.Join(track, "freezer.state"), []byte("FROZEN"), 0o644)
		}
		pids := pidsIn(track)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if !unified() {
			_ = os.WriteFile(filepath.Join(track, "freezer.state"), []byte("THAWED"), 0o644)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in cgroup %s survive SIGKILL", pids, track)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var errs []error
	for _, h := range hierarchies() {
		for _, d := range cgroupTree(filepath.Join(h, rel)) {
			var err error
			for range 50 { // a cgroup whose last task just died is busy for a moment
				if err = os.Remove(d); err == nil || os.IsNotExist(err) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// leftovers lists what of a test bed named name with directory dir is
// still on the host: cgroups, processes in them or naming dir, mounts
// under dir.
func leftovers(name, dir string) []string {
	var left []string
	for _, h := range hierarchies() {
		if _, err := os.Stat(filepath.Join(h, name)); err == nil {
			left = append(left, "cgroup "+filepath.Join(h, name))
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		if filepath.Base(p) == self {
			continue
		}
		// A zombie holds nothing but its pid: killed shims, whose parent is
		// init once containerd is gone, wait there to be reaped.
		st, _ := os.ReadFile(filepath.Join(p, "stat"))
		if isZombie(st) {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if bytes.Contains(cg, []byte("/"+name+"/")) || bytes.Contains(cg, []byte("/"+name+"\n")) ||
			bytes.Contains(cmdline, []byte(dir)) {
			left = append(left, fmt.Sprintf("process %s (%s): %s", filepath.Base(p), procState(st), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
				left = append(left, "mount "+fields[4])
			}
		}
		f.Close()
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	return left
}

// sweep removes what test beds of processes that died without stopping them
// (kill -9 of a test binary) left on the host: their cgroup trees (so their
// pods and shims), namespace mounts and directories.
func sweep() {
	dead := func(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }
	trees, _ := filepath.Glob(filepath.Join(trackingDir(), "skiff-tb*-*"))
	for _, t := range trees {
		var pid, n int
		if _, err := fmt.Sscanf(filepath.Base(t), "skiff-tb%d-%d", &pid, &n); err == nil && dead(pid) {
			_ = killCgroup(filepath.Base(t))
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "stb*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil || !dead(pid) {
			continue
		}
		for _, ns := range []string{"net2", "net1"} {
			_ = syscall.Unmount(filepath.Join(d, ns), syscall.MNT_DETACH)
		}
		_ = os.RemoveAll(d)
	}
}

// isZombie reads /proc/<pid>/stat: "pid (comm) S …".
// procState is a process's name and state from its /proc/<pid>/stat
// ("kubelet S").
func procState(stat []byte) string {
	i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if i < 0 || j < i || j+2 >= len(stat) {
		return "?"
	}
	return string(stat[i+1:j]) + " " + string(stat[j+2])
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
