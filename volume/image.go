package volume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff"
)

// MinSize is the smallest volume (ext4 needs room for its journal).
const MinSize = 16 << 20

// imageSupport says why image volumes cannot work here, "" when they can.
func imageSupport() string {
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return "no loop devices (/dev/loop-control)"
	}
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "resize2fs", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				if _, err := os.Stat("/sbin/" + tool); err != nil {
					return tool + " is missing (Debian's e2fsprogs and mount packages have them)"
				}
			}
		}
	}
	return ""
}

// makeImage makes an ext4 image of size bytes, its blocks allocated on the
// host's disk at once.
func makeImage(ctx context.Context, img string, size int64) error {
	if size < MinSize {
		return skiff.Errorf(skiff.EINVALID, "a volume takes at least %d MiB", MinSize>>20)
	}
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = f.Truncate(size) // a file system without fallocate: sparse
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, unix.ENOSPC) {
		os.Remove(img)
		return skiff.Errorf(skiff.EUNAVAILABLE, "the server's disk has no room for a volume of %s; choose a smaller --size or free space", skiff.FormatSize(size))
	}
	if err == nil {
		err = command(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", img)
	}
	if err != nil {
		os.Remove(img)
		return fmt.Errorf("make the volume's file system: %w", err)
	}
	return nil
}

// mountImage loop-mounts img at dir (nosuid, nodev), checking it first
// when it was mounted before (a reboot may have cut it short).
func mountImage(ctx context.Context, img, dir string, check bool) error {
	if check {
		// -p repairs what is safe to repair; 4 and above mean errors left.
		cmd := exec.CommandContext(ctx, "e2fsck", "-p", img)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() >= 4 || err != nil && !errors.As(err, &ee) {
			return fmt.Errorf("check %s: %v: %s (an admin runs e2fsck on it)", filepath.Base(img), err, bytesTrim(out))
		}
	}
	return command(ctx, "mount", "-t", "ext4", "-o", "loop,nosuid,nodev", img, dir)
}

// mounted reports whether dir is a mount point (a file system of its own).
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// unmount takes dir's file system away (lazily, so a container still using
// it keeps it until it ends); the loop device clears itself after.
func unmount(dir string) error {
	for mounted(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", dir, err)
		} else if err != nil {
			break
		}
	}
	return nil
}

// growImage grows a mounted image volume to size: the file, the loop
// device's capacity, then the file system, online.
func growImage(ctx context.Context, img, dir string, size int64) error {
	fi, err := os.Stat(img)
	if err != nil {
		return err
	}
	if size <= fi.Size() {
		return skiff.Errorf(skiff.EINVALID, "volumes only grow: it is %s already", skiff.FormatSize(fi.Size()))
	}
	if !CanGrow() {
		return skiff.Errorf(skiff.EUNAVAILABLE, "growing a volume while it is mounted needs the CAP_SYS_RESOURCE capability, which skiff does not have here")
	}
	dev, err := loopDevice(dir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = f.Truncate(size)
	}
	f.Close()
	if errors.Is(err, unix.ENOSPC) {
		return skiff.Errorf(skiff.EUNAVAILABLE, "the server's disk has no room to grow the volume to %s", skiff.FormatSize(size))
	} else if err != nil {
		return err
	}
	d, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	_, err = unix.IoctlRetInt(int(d.Fd()), unix.LOOP_SET_CAPACITY)
	d.Close()
	if err != nil {
		return fmt.Errorf("grow %s: %w", dev, err)
	}
	return command(ctx, "resize2fs", dev)
}

// loopDevice is the device mounted at dir, from the mount table.
func loopDevice(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[4] != dir {
			continue
		}
		for i, x := range fields {
			if x == "-" && i+2 < len(fields) && strings.HasPrefix(fields[i+2], "/dev/loop") {
				return fields[i+2], nil
			}
		}
	}
	return "", fmt.Errorf("no loop device is mounted at %s", dir)
}

// CanGrow reports whether volumes can grow online: ext4 asks for
// CAP_SYS_RESOURCE, which a daemon in a restricted container may lack.
func CanGrow() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}
