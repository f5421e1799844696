package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The build image is the run image plus the build packages, installed with
// apt-get in a chroot on an overlay of the run root file system: the base
// system is unpacked and configured once, not once per image, and the two
// images share their bottom layer (one blob in the store, one copy on
// disk). The overlay's upper directory is the build image's own layer.
//
// Like debootstrap's results, the upper directory is kept in the cache
// directory, keyed on the run root file system it lies on and the
// packages, and apt's package lists and downloads are kept there too, so
// a second builder:create downloads nothing it has.

// buildOnRun returns the upper directory of an overlay on runRoot (the run
// root file system in the debootstrap cache) with pkgs installed, from the
// cache or made now.
func (p *Platform) buildOnRun(ctx context.Context, opts CreateOptions, runRoot string, pkgs []string, out io.Writer) (string, error) {
	pkgs = slices.Sorted(slices.Values(pkgs))
	base := p.debootstrapCacheDir(opts)
	// The run root file system's .complete stamp changes when it is made
	// again; a layer on an older one is stale.
	stamp, err := os.ReadFile(filepath.Join(filepath.Dir(runRoot), ".complete"))
	if err != nil {
		return "", fmt.Errorf("run root file system: %w", err)
	}
	sum := sha256.Sum256([]byte(runRoot + "\n" + string(stamp) + "\n" + opts.Mirror + "\n" + strings.Join(pkgs, ",")))
	dir := filepath.Join(base, "build-on-run-"+opts.Suite+"-"+hex.EncodeToString(sum[:6]))
	lock, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock the build image cache: %w", err)
	}
	upper := filepath.Join(dir, "upper")
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil && !opts.Rebase {
		fmt.Fprintf(out, "-----> Using the cached build packages on the %s run root file system\n", opts.Suite)
		return upper, nil
	}
	fmt.Fprintf(out, "-----> Installing the build packages on the run root file system\n")
	fmt.Fprintf(out, "       packages: %s\n", strings.Join(pkgs, " "))
	if err := unmountUnder(dir); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	work, merged := filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	err = p.aptInstall(ctx, base, runRoot, upper, work, merged, pkgs, out)
	if uerr := unmountUnder(merged); uerr != nil && err == nil {
		err = fmt.Errorf("unmount the build image's file systems: %w", uerr)
	}
	if err != nil {
		return "", err
	}
	os.RemoveAll(work)
	os.Remove(merged)
	if err := finishUpper(upper); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", err
	}
	return upper, nil
}

// aptInstall mounts the overlay and what apt and dpkg need in it, and runs
// apt-get update and install in a chroot.
func (p *Platform) aptInstall(ctx context.Context, cache, lower, upper, work, merged string, pkgs []string, out io.Writer) error {
	for _, d := range []string{lower, upper, work} {
		if strings.ContainsAny(d, ",:") {
			return fmt.Errorf("the path %s has a ',' or ':', which overlay mounts cannot take; use another debootstrap cache", d)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	if err := unix.Mount("proc", filepath.Join(merged, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	dev := filepath.Join(merged, "dev")
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := unix.Mknod(filepath.Join(dev, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil { //nolint:gosec // small device numbers
			return fmt.Errorf("make /dev/%s: %w", n.name, err)
		}
		if err := os.Chmod(filepath.Join(dev, n.name), 0o666); err != nil { // past the umask
			return fmt.Errorf("make /dev/%s: %w", n.name, err)
		}
	}
	// apt's downloads go to debootstrap's (so each .deb is fetched once
	// for both), its lists to the cache: neither is in the image.
	lists := filepath.Join(cache, "apt-lists")
	for _, b := range []struct{ src, dst string }{
		{filepath.Join(cache, "debs"), "var/cache/apt/archives"},
		{lists, "var/lib/apt/lists"},
		{"/etc/resolv.conf", "etc/resolv.conf"},
	} {
		if b.src != "/etc/resolv.conf" {
			if err := os.MkdirAll(filepath.Join(b.src, "partial"), 0o755); err != nil {
				return err
			}
		}
		if err := unix.Mount(b.src, filepath.Join(merged, b.dst), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", b.dst, err)
		}
	}
	// dpkg's fsync of every file is most of its time, and worth nothing
	// here: an interrupted install is thrown away and made again.
	if err := os.WriteFile(filepath.Join(merged, "etc/dpkg/dpkg.cfg.d", unsafeIOConf), []byte("force-unsafe-io\n"), 0o644); err != nil {
		return err
	}
	if err := chrootApt(ctx, merged, out, "update"); err != nil {
		return err
	}
	return chrootApt(ctx, merged, out, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
}

// unsafeIOConf is the dpkg configuration file that turns fsync off while
// skiff installs packages; it is removed before the image is made.
const unsafeIOConf = "skiff-unsafe-io"

// chrootApt runs apt-get with args in root, showing what it fetched and
// installs.
func chrootApt(ctx context.Context, root string, out io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root, "apt-get", "-q", "-o", "APT::Sandbox::User=root", "-o", "Dpkg::Use-Pty=0"}, args...)...)
	return runShowing("apt-get "+args[0], cmd, out, func(line string) bool {
		return strings.HasPrefix(line, "Fetched ") || strings.HasPrefix(line, "E:") || strings.Contains(line, "newly installed")
	})
}

// finishUpper drops from the build image's layer what apt leaves that an
// image does not need (its caches and logs; the lists and downloads were
// never in it) and skiff's dpkg setting.
func finishUpper(upper string) error {
	for _, glob := range []string{"etc/dpkg/dpkg.cfg.d/" + unsafeIOConf, "var/cache/apt/*.bin", "var/log/*.log", "var/log/apt", "var/cache/debconf/*-old"} {
		matches, _ := filepath.Glob(filepath.Join(upper, glob))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	// The mount points of lists and downloads: apt may have made them in
	// upper (a copy-up of their attributes); the run image's stay below.
	for _, d := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		p := filepath.Join(upper, d)
		if ents, err := os.ReadDir(p); err == nil && len(ents) == 0 {
			os.Remove(p)
		}
	}
	return nil
}

// debootstrapCacheDir is where builder:create keeps Debian root file
// systems and downloads.
func (p *Platform) debootstrapCacheDir(opts CreateOptions) string {
	if opts.CacheDir != "" {
		return opts.CacheDir
	}
	return filepath.Join(p.cfg.DataDir, "builder", "debootstrap")
}

// readUpperOrLower reads rel from upper if it has it, else from lower: a
// file of the merged view without mounting it. An upper whiteout means
// there is none.
func readUpperOrLower(upper, lower, rel string) ([]byte, error) {
	p := filepath.Join(upper, rel)
	if fi, err := os.Lstat(p); err == nil {
		if fi.Mode()&os.ModeCharDevice != 0 {
			return nil, os.ErrNotExist
		}
		return os.ReadFile(p)
	}
	return os.ReadFile(filepath.Join(lower, rel))
}
