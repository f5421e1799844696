package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Where a Runc's containers' cgroups live, and how runc is told.
//
// On cgroup v1 and on a unified hierarchy without systemd (a container
// host, `make run` where systemd is not PID 1) they are <parent>/<id> below
// the hierarchy's root, made by runc's cgroupfs driver; on v2 skiff first
// readies the parent (prepareUnified). Where systemd runs the unified
// hierarchy, systemd owns the tree: each container is a transient scope of
// its own, <parent>-<id>.scope in the parent's slice (slice), made by runc's systemd
// driver over D-Bus with Delegate=yes (runc sets it on the scope). Scopes
// are not the daemon's service's children, so they outlive its restarts: a
// service with Delegate=yes that kept its containers below its own cgroup
// could not be started again while they run (systemd places the new main
// process in the service's cgroup, which the kernel refuses once its
// cgroup.subtree_control has controllers enabled: the no-internal-process
// rule).
type cgroupLayout struct {
	systemd bool
	parent  string // "skiff": the cgroupfs parent, or the scopes' prefix
}

// systemdBooted reports whether systemd is PID 1 (sd_booted's test).
func systemdBooted() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// parentSides are the suffixes of a daemon's other cgroup parents (its builds'
// and its services'), beside the instances' <prefix>.
var parentSides = []string{"-builds", "-services"}

// slice is the systemd slice of the layout's scopes: <prefix>.slice for a
// daemon's instances, and inside it <prefix>-builds.slice and
// <prefix>-services.slice (a '-' in a slice's name nests it in the slice
// its name up to the '-' names), so that every cgroup of one daemon is
// under its own slice, beside skiff.service. A '-' in the prefix itself
// becomes '_', which nests nothing.
func (l cgroupLayout) slice() string {
	for _, side := range parentSides {
		if p, ok := strings.CutSuffix(l.parent, side); ok && p != "" {
			return strings.ReplaceAll(p, "-", "_") + side + ".slice"
		}
	}
	return strings.ReplaceAll(l.parent, "-", "_") + ".slice"
}

// slicePath is the slice's cgroup below the hierarchy's root, as systemd
// nests it: a.slice/a-b.slice for a-b.slice.
func (l cgroupLayout) slicePath() string {
	name := strings.TrimSuffix(l.slice(), ".slice")
	var path strings.Builder
	for i := range len(name) {
		if name[i] == '-' {
			path.WriteString(name[:i] + ".slice/")
		}
	}
	return path.String() + name + ".slice"
}

// runcPath is the spec's cgroupsPath for container id.
func (l cgroupLayout) runcPath(id string) string {
	if l.systemd {
		return l.slice() + ":" + l.parent + ":" + id
	}
	return "/" + l.parent + "/" + id
}

// dir is container id's cgroup below the hierarchy's root.
func (l cgroupLayout) dir(id string) string {
	if l.systemd {
		return "/" + l.slicePath() + "/" + l.parent + "-" + id + ".scope"
	}
	return "/" + l.parent + "/" + id
}

// parentDir is where the layout's cgroups are, below the root.
func (l cgroupLayout) parentDir() string {
	if l.systemd {
		return l.slicePath()
	}
	return l.parent
}

// ids lists the containers whose cgroups exist in fs.
func (l cgroupLayout) ids(fs cgroupFS) []string {
	var out []string
	for _, name := range fs.list(l.parentDir()) {
		if !l.systemd {
			out = append(out, name)
		} else if id, ok := strings.CutPrefix(name, l.parent+"-"); ok && strings.HasSuffix(id, ".scope") {
			out = append(out, strings.TrimSuffix(id, ".scope"))
		}
	}
	return out
}

// limitedControllers are the v2 controllers whose files skiff's limits
// write: cpu.max, memory.max (and memory.swap.max, memory.oom.group),
// pids.max.
var limitedControllers = []string{"cpu", "memory", "pids"}

// prepareUnified readies cgroup parent (below fs's root) for containers'
// cgroups, in the order the kernel's cgroup-v2 documentation requires: a
// controller is enabled in a cgroup's cgroup.subtree_control only when it
// is listed in its cgroup.controllers, that is when its parent enabled it
// first; so the root's subtree_control gets cpu, memory and pids, then the
// parent is made and gets them too, before any container's cgroup is made
// below it. A cgroup whose subtree_control enables controllers may hold no
// process (the no-internal-process rule, the root excepted): skiff never
// puts one in the parent, and finding one there is an error rather than a
// runc failure later. Writes are made only where a controller is missing,
// so a restart changes nothing. It reports whether the parent has
// memory.swap.max (swap accounting is on).
func (fs cgroupFS) prepareUnified(parent string) (swap bool, err error) {
	if !fs.v2 {
		return false, nil
	}
	dirs := []string{fs.root}
	for p, acc := strings.Trim(parent, "/"), fs.root; p != ""; {
		first, rest, _ := strings.Cut(p, "/")
		acc = filepath.Join(acc, first)
		dirs, p = append(dirs, acc), rest
	}
	for i, dir := range dirs {
		if i > 0 {
			if err := fs.mkdir(dir); err != nil {
				return false, fmt.Errorf("cgroup %s: %w", dir, err)
			}
			if procs := readTrim(filepath.Join(dir, "cgroup.procs")); procs != "" {
				return false, fmt.Errorf("cgroup %s holds processes (%s): containers' cgroups cannot go below it (the kernel's no-internal-process rule); move them elsewhere", dir, strings.Join(strings.Fields(procs), " "))
			}
		}
		have := strings.Fields(readTrim(filepath.Join(dir, "cgroup.controllers")))
		on := strings.Fields(readTrim(filepath.Join(dir, "cgroup.subtree_control")))
		var add []string
		for _, c := range limitedControllers {
			if !slices.Contains(have, c) {
				return false, fmt.Errorf("cgroup %s: the %s controller is not available (cgroup.controllers: %q); skiff needs cpu, memory and pids", dir, c, strings.Join(have, " "))
			}
			if !slices.Contains(on, c) {
				add = append(add, "+"+c)
			}
		}
		if len(add) > 0 {
			if err := fs.write(filepath.Join(dir, "cgroup.subtree_control"), strings.Join(add, " ")); err != nil {
				return false, fmt.Errorf("enable %s in %s: %w", strings.Join(add, " "), dir, err)
			}
		}
	}
	// The last one is the parent: it enables memory for its children, so
	// its own memory files show what they will have.
	last := dirs[len(dirs)-1]
	if len(dirs) > 1 {
		// The children get memory.swap.max when the parent's has it.
		_, err := os.Stat(filepath.Join(last, "memory.swap.max"))
		swap = err == nil
	}
	return swap, nil
}

// swapAccounting reports whether cgroups with the memory controller have
// memory.swap.max on this host (swap accounting), looking at the cgroups
// in dirs (below fs's root) that have memory files at all.
func (fs cgroupFS) swapAccounting(dirs ...string) bool {
	for _, d := range dirs {
		dir := filepath.Join(fs.root, d)
		if _, err := os.Stat(filepath.Join(dir, "memory.max")); err != nil {
			continue
		}
		_, err := os.Stat(filepath.Join(dir, "memory.swap.max"))
		return err == nil
	}
	return false
}

// ownCgroup is this process's cgroup on the unified hierarchy, from
// /proc/self/cgroup's "0::" line.
func ownCgroup() string {
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

func (fs cgroupFS) mkdir(dir string) error {
	if fs.mkdirHook != nil {
		return fs.mkdirHook(dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

func (fs cgroupFS) write(path, value string) error {
	if fs.writeHook != nil {
		return fs.writeHook(path, value)
	}
	return writeCgroup(path, value)
}
