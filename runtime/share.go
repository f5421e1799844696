package runtime

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The share is a small tmpfs at DATA/runtime holding the files containers
// bind-mount: skiff-init, and each instance's resolv.conf and hosts. A bind
// mount shows its source's path within its own file system in the
// container's /proc/self/mountinfo; from this tmpfs that is /skiff-init or
// /net/<id>/hosts, where from the data directory's disk it named the data
// directory. It stays mounted while instances run (across daemon restarts);
// skiff teardown unmounts it (UnmountShare).
const shareSize = "64m"

func shareDir(dataDir string) string { return filepath.Join(dataDir, "runtime") }

// mountShare mounts the share unless it is mounted already (an earlier
// daemon's). Where no tmpfs can be mounted it stays a plain directory.
func mountShare(dataDir string) (mounted bool, err error) {
	dir := shareDir(dataDir)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return false, err
	}
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) == nil && unix.Stat(filepath.Dir(dir), &parent) == nil && st.Dev != parent.Dev {
		return true, nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+shareSize+",mode=0711"); err != nil {
		return false, err
	}
	return true, nil
}

// UnmountShare takes the share away (teardown, tests). Running containers
// keep the files they mounted.
func UnmountShare(dataDir string) error {
	err := unix.Unmount(shareDir(dataDir), unix.MNT_DETACH)
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil // not mounted
	}
	return err
}

// netDir is where an instance's resolv.conf and hosts live.
func (r *Runtime) netDir(id string) string { return filepath.Join(shareDir(r.cfg.DataDir), "net", id) }

// exitDir is where a one-off's skiff-init records its exit status: in the
// share, so it outlives the daemon (not a reboot, which the container does
// not outlive either).
func (r *Runtime) exitDir(id string) string {
	return filepath.Join(shareDir(r.cfg.DataDir), "exit", id)
}

// removeInstance removes an instance's directory and its files in the share.
func (r *Runtime) removeInstance(id, dir string) {
	os.RemoveAll(dir)
	os.RemoveAll(r.netDir(id))
	os.RemoveAll(r.exitDir(id))
}
