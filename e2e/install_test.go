package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// make install puts every program make build makes where the service finds
// them (skiff-init once was left out, and the service failed every 2 s),
// with its settings and units; here into a scratch directory (DESTDIR).
func TestInstallIntoScratchDir(t *testing.T) {
	binDir := filepath.Dir(skiffBin)
	if _, err := os.Stat(filepath.Join(binDir, "skiff-init")); err != nil {
		t.Skip("needs the helper programs, which TestMain builds as root")
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var progs []string
	for _, m := range regexp.MustCompile(`-o bin/(\S+)`).FindAllStringSubmatch(string(mk), -1) {
		progs = append(progs, m[1])
	}
	if len(progs) < 3 {
		t.Fatalf("found only %v in the Makefile's build", progs)
	}
	dest := t.TempDir()
	cmd := exec.Command("sh", "../scripts/install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+dest, "BIN_DIR="+binDir, "SKIFF_DOMAIN=apps.example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for _, p := range progs {
		want, _ := os.ReadFile(filepath.Join(binDir, p))
		got, err := os.ReadFile(filepath.Join(dest, "usr/local/bin", p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s not installed in usr/local/bin (%v)", p, err)
		}
		if fi, err := os.Stat(filepath.Join(dest, "usr/local/bin", p)); err == nil && fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable", p)
		}
	}
	if cfg, _ := os.ReadFile(filepath.Join(dest, "etc/default/skiff")); !strings.Contains(string(cfg), "SKIFF_DOMAIN=apps.example.com") {
		t.Errorf("etc/default/skiff: %q", cfg)
	}
	units := []string{"skiff.service", "skiff-ssh.socket", "skiff-http.socket", "skiff-https.socket"}
	for _, u := range units {
		if _, err := os.Stat(filepath.Join(dest, "etc/systemd/system", u)); err != nil {
			t.Errorf("unit %s: %v", u, err)
		}
	}
	// systemd's own check of the units (where systemd-analyze is there, as
	// root), with the staged programs where the units expect them.
	if _, err := exec.LookPath("systemd-analyze"); err == nil && os.Geteuid() == 0 {
		var paths []string
		for _, u := range units {
			paths = append(paths, filepath.Join(dest, "etc/systemd/system", u))
		}
		script := `mount --bind "$0/usr/local/bin" /usr/local/bin && exec systemd-analyze verify "$@"`
		if out, err := exec.Command("/usr/bin/unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, dest}, paths...)...).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	// A second install keeps the settings someone edited.
	os.WriteFile(filepath.Join(dest, "etc/default/skiff"), []byte("SKIFF_DOMAIN=mine.example.com\n"), 0o644)
	cmd = exec.Command("sh", "../scripts/install.sh")
	cmd.Env = append(os.Environ(), "DESTDIR="+dest, "BIN_DIR="+binDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install again: %v\n%s", err, out)
	}
	if cfg, _ := os.ReadFile(filepath.Join(dest, "etc/default/skiff")); string(cfg) != "SKIFF_DOMAIN=mine.example.com\n" {
		t.Errorf("settings overwritten: %q", cfg)
	}
}

// install-deps.sh on a fresh Debian 12 (a minimal debootstrapped root, in
// an overlay so each run starts clean) installs everything skiff's build
// needs: a cgo program (skiff's SQLite is one) builds after it, which gcc
// alone (without libc6-dev, which it only recommends) did not allow. An apt
// that holds the lock is waited for, not failed on.
func TestInstallDepsOnFreshDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("installs Debian packages into a fresh root: not in -short mode")
	}
	base := debianRoot(t, "bookworm")
	scratch := t.TempDir()
	for _, d := range []string{"upper", "work", "root", "cgo"} {
		os.MkdirAll(filepath.Join(scratch, d), 0o755)
	}
	os.WriteFile(filepath.Join(scratch, "cgo", "go.mod"), []byte("module cgo\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(scratch, "cgo", "main.go"), []byte("package main\n\n// #include <stdio.h>\n// #include <stdlib.h>\n// static void hi(void) { printf(\"hello from C\\n\"); fflush(stdout); }\nimport \"C\"\n\nfunc main() { C.hi() }\n"), 0o644)
	archives := filepath.Join(rootsCache, "apt-archives") // downloaded .debs, kept between runs
	os.MkdirAll(filepath.Join(archives, "partial"), 0o755)
	gocache := filepath.Join(rootsCache, "gocache") // the cgo build's, kept between runs
	os.MkdirAll(gocache, 0o755)
	scripts, _ := filepath.Abs("../scripts")
	// The lock holder: perl (in every Debian) takes apt's locks the way
	// apt does (fcntl) for 8 seconds.
	holdLocks := `perl -e 'use Fcntl; my @f; for my $p ("/var/lib/dpkg/lock-frontend", "/var/lib/apt/lists/lock") { open(my $h, ">>", $p) or die "$p: $!"; my $l = pack("ssx4qqix4", F_WRLCK, 0, 0, 0, 0); fcntl($h, F_SETLK, $l) or die "lock $p: $!"; push @f, $h } print "apt locks held\n"; sleep 8' &`
	inside := `set -e
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mkdir -p /var/lib/apt/lists
` + holdLocks + `
sleep 1
sh /skiff/scripts/install-deps.sh
dpkg-query -W -f='${Status}\n' libc6-dev
cd /tmp/cgo && CGO_ENABLED=1 GOCACHE=/tmp/gocache GOFLAGS=-mod=mod go build -o hi . && ./hi`
	script := fmt.Sprintf(`set -e
s=%q
mount -t overlay overlay -o lowerdir=%q,upperdir=$s/upper,workdir=$s/work $s/root
mount --rbind /dev $s/root/dev
mount -t proc proc $s/root/proc
mkdir -p $s/root/skiff/scripts $s/root/usr/local/go $s/root/tmp/cgo
mount --bind -o ro %q $s/root/skiff/scripts
mount --bind -o ro /usr/local/go $s/root/usr/local/go
mount --bind $s/cgo $s/root/tmp/cgo
mount --bind %q $s/root/var/cache/apt/archives
mkdir -p $s/root/tmp/gocache && mount --bind %q $s/root/tmp/gocache
cp /etc/resolv.conf $s/root/etc/resolv.conf
exec /usr/sbin/chroot $s/root /bin/sh -c "$0"`, scratch, base, scripts, archives, gocache)
	start := time.Now()
	cmd := exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, inside)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("install-deps.sh in a fresh Debian 12 root: %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"apt locks held", "Waiting for another apt or dpkg to finish", "install ok installed", "hello from C"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
