package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// rootsCache keeps the Debian roots tests make with debootstrap, beside the
// build tests' debootstrap cache, so CI makes each once.
const rootsCache = "/var/cache/skiff-test/roots"

// debianRoot returns a minimal Debian root of suite with packages, made with
// debootstrap from the distribution's mirror the first time (a couple of
// minutes) and kept. It needs root.
func debianRoot(t *testing.T, suite string, packages ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: debootstraps a Debian root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("needs debootstrap (scripts/install-deps.sh installs it)")
	}
	h := sha256.Sum256([]byte(suite + " " + strings.Join(packages, ",")))
	dir := filepath.Join(rootsCache, suite+"-"+hex.EncodeToString(h[:6]))
	if err := os.MkdirAll(rootsCache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", "debian_version")); err == nil {
		return dir
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	args := []string{"--variant=minbase"}
	if len(packages) > 0 {
		args = append(args, "--include="+strings.Join(packages, ","))
	}
	args = append(args, suite, tmp, "http://deb.debian.org/debian")
	t.Logf("debootstrap %s (once; kept in %s)", strings.Join(args, " "), rootsCache)
	if out, err := exec.Command("debootstrap", args...).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("debootstrap: %v\n%s", err, out[max(0, len(out)-3000):])
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inRoot runs a command chrooted into root, with /dev and /proc mounted in
// a mount namespace of its own (gone when the command ends), on the host's
// network.
func inRoot(t *testing.T, root string, env []string, args ...string) result {
	t.Helper()
	script := `mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec /usr/sbin/chroot "$0" "$@"`
	cmd := exec.Command("/usr/bin/unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, root}, args...)...)
	if env == nil {
		env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root"}
	}
	cmd.Env = env
	return runCmd(t, cmd, "")
}
