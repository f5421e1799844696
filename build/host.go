package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiffhq/skiff"
)

// What a build needs from the host besides the sandbox: free space,
// ownership of its directories, resolvers, and its logs kept in bounds.

// freeBytes is the space left to unprivileged users on DATA's file system.
func (p *Platform) freeBytes() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.cfg.DataDir, &st); err != nil {
		return 0, fmt.Errorf("check free space: %w", err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:gosec // a disk's free bytes are far below 2^63
}

// checkDisk refuses to start a build when the data directory is low on space.
func (p *Platform) checkDisk() error {
	free, err := p.freeBytes()
	if err != nil {
		return err
	}
	if free < p.cfg.MinFreeBytes {
		return skiff.Errorf(skiff.EUNAVAILABLE, "not enough free disk space to build (%d MiB free, %d MiB needed); free some space or run the garbage collector", free>>20, p.cfg.MinFreeBytes>>20)
	}
	return nil
}

// errDiskFloor ends a build that drove free space below the floor;
// errDiskBudget one that wrote more than Limits.Disk.
var (
	errDiskFloor  = errors.New("free disk space fell below the floor")
	errDiskBudget = errors.New("the build wrote more than its disk budget")
)

// watchDisk stops the build (cancel with errDiskFloor) when DATA's free
// space falls below Config.DiskFloorBytes while it runs, so that builds
// filling the disk fail before the host does (SQLite, logs, other apps'
// writes), and (errDiskBudget) when what this build wrote under its
// directory grows past Limits.Disk. The directory's size is summed less
// often than free space is read, as the walk costs more the more files
// the build makes (at most a tenth of the time). It returns when ctx ends.
func (p *Platform) watchDisk(ctx context.Context, cancel context.CancelCauseFunc, u *diskUsage) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	nextWalk := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if free, err := p.freeBytes(); err == nil && free < p.cfg.DiskFloorBytes {
			cancel(errDiskFloor)
			return
		}
		if u == nil || time.Now().Before(nextWalk) {
			continue
		}
		start := time.Now()
		used := u.bytes()
		nextWalk = time.Now().Add(max(time.Second, 10*time.Since(start)))
		if used > p.cfg.Limits.Disk {
			cancel(errDiskBudget)
			return
		}
	}
}

// diskUsage sums the space a build's files take under dir: blocks
// allocated, each inode once; of the files that were there before the build
// ran (blobs lent from the image store, the source) only what they grew
// by; leaving out the mount points in skip (the cache's overlay, whose
// writes are counted in its upper directory).
type diskUsage struct {
	dir    string
	skip   map[string]bool
	before map[[2]uint64]int64 // dev, inode → blocks then
}

func newDiskUsage(dir string, skip ...string) *diskUsage {
	u := &diskUsage{dir: dir, skip: map[string]bool{}, before: map[[2]uint64]int64{}}
	for _, s := range skip {
		u.skip[s] = true
	}
	u.walk(func(id [2]uint64, st *syscall.Stat_t) { u.before[id] = st.Blocks })
	return u
}

func (u *diskUsage) bytes() int64 {
	seen := map[[2]uint64]bool{}
	var total int64
	u.walk(func(id [2]uint64, st *syscall.Stat_t) {
		if seen[id] {
			return
		}
		seen[id] = true
		total += max(0, st.Blocks-u.before[id]) * 512
	})
	return total
}

func (u *diskUsage) walk(f func(id [2]uint64, st *syscall.Stat_t)) {
	_ = filepath.WalkDir(u.dir, func(path string, d fs.DirEntry, err error) error { // the callback skips what it cannot read
		if err != nil {
			return nil // gone meanwhile, or unreadable: the build's own business
		}
		if d.IsDir() && u.skip[path] {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			f([2]uint64{st.Dev, st.Ino}, st)
		}
		return nil
	})
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm()&0o222 == 0 {
			return nil // a blob lent from the store: stays root's, read-only
		}
		return os.Lchown(p, uid, gid) //nolint:gosec // G122: before the build starts; nothing else writes the tree then
	})
}

// keepLogs is how many build logs each app keeps.
const keepLogs = 50

// pruneLogs removes an app's oldest build logs beyond keepLogs.
func (p *Platform) pruneLogs(appID string) {
	dir := filepath.Dir(p.logPath(appID, "x"))
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) <= keepLogs {
		return
	}
	type logFile struct {
		name string
		mod  time.Time
	}
	var logs []logFile
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".log") {
			logs = append(logs, logFile{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(logs, func(a, b logFile) int { return a.mod.Compare(b.mod) })
	for _, l := range logs[:max(0, len(logs)-keepLogs)] {
		os.Remove(filepath.Join(dir, l.name))
	}
}

// userHome reads uid's home directory from the root file system's
// /etc/passwd ("" when it has none).
func userHome(rootfs string, uid int) string {
	b, err := os.ReadFile(filepath.Join(rootfs, "etc", "passwd"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 6 && f[2] == strconv.Itoa(uid) {
			return path.Clean(f[5])
		}
	}
	return ""
}

// resolvConf is what builds get as /etc/resolv.conf: the configured file,
// or the host's resolvers without loopback ones (a build cannot reach the
// host), read from systemd-resolved's upstream list when it runs.
func (p *Platform) resolvConf() []byte {
	files := []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"}
	if p.cfg.ResolvConf != "" {
		files = []string{p.cfg.ResolvConf}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "nameserver" {
				if ip, err := netip.ParseAddr(fields[1]); err != nil || ip.IsLoopback() {
					continue
				}
			}
			out = append(out, line)
		}
		return []byte(strings.Join(out, "\n"))
	}
	return nil
}
