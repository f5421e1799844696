package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// make run as a new user meets it (scripts/run.sh, as sudo runs it): the
// directions name the skiff binary by its path (it is not on PATH), the host
// key's fingerprint to check, and an admin key the user who ran sudo can
// use; run again with another SKIFF_DOMAIN while the daemon runs, it says
// the daemon still serves the old one.
func TestRunScript(t *testing.T) {
	requireFull(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o711)
	// A tree like the repository's: scripts/run.sh and bin/.
	os.MkdirAll(filepath.Join(dir, "tree", "scripts"), 0o755)
	os.MkdirAll(filepath.Join(dir, "tree", "bin"), 0o755)
	script, _ := os.ReadFile("../scripts/run.sh")
	os.WriteFile(filepath.Join(dir, "tree", "scripts", "run.sh"), script, 0o755)
	for _, p := range []string{"skiff", "skiff-init", "skiff-buildpack", "skiff-hook"} {
		os.Symlink(filepath.Join(filepath.Dir(skiffBin), p), filepath.Join(dir, "tree", "bin", p))
	}
	// The user who ran sudo: one with a home and no SSH key, in a passwd
	// file only the script's mount namespace sees.
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o755)
	os.Chown(home, 4242, 4242)
	passwd, _ := os.ReadFile("/etc/passwd")
	passwd = append(passwd, []byte(fmt.Sprintf("skiffrun:x:4242:4242::%s:/bin/sh\n", home))...)
	os.WriteFile(filepath.Join(dir, "passwd"), passwd, 0o644)
	hr := hostResources(3)
	data := filepath.Join(dir, "data")
	env := []string{"PATH=" + os.Getenv("PATH"), "SUDO_USER=skiffrun", "SKIFF_DEFAULTS=/nonexistent", "SKIFF_DATA=" + data,
		"SKIFF_SSH_ADDR=127.0.0.1:0", "SKIFF_HTTP_ADDR=127.0.0.1:0", "SKIFF_HTTPS_ADDR=127.0.0.1:0",
		"SKIFF_RESOURCE_PREFIX=" + hr.prefix, "SKIFF_NETWORK_POOL=" + hr.pool, "SKIFF_DEBOOTSTRAP_CACHE=" + debootstrapCache}
	runScript := func(extra ...string) *exec.Cmd {
		cmd := exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
			`mount --bind "$0" /etc/passwd && exec sh "$1"`, filepath.Join(dir, "passwd"), filepath.Join(dir, "tree", "scripts", "run.sh"))
		cmd.Env = append(append([]string{}, env...), extra...)
		return cmd
	}
	first := runScript("SKIFF_DOMAIN=run.test")
	daemonLog := new(bytesBuffer)
	first.Stderr = daemonLog
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("make run's log:\n%s", daemonLog.String())
		}
	})
	out, _ := first.StdoutPipe()
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		first.Process.Signal(syscall.SIGTERM)
		first.Wait()
		exec.Command(skiffBin, "teardown", "--data", data, "--resource-prefix", hr.prefix, "--network-pool", hr.pool).Run()
	}()
	var directions strings.Builder
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	timeout := time.After(5 * time.Minute)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			directions.WriteString(l + "\n")
			if strings.Contains(l, "Stop with Ctrl-C") {
				break read
			}
		case <-timeout:
			t.Fatalf("make run gave no directions in 5 minutes:\n%s", directions.String())
		}
	}
	got := directions.String()
	var ready struct {
		Domain  string `json:"domain"`
		HostKey string `json:"host_key"`
		HTTP    string `json:"http"`
	}
	raw, _ := os.ReadFile(filepath.Join(data, "ready.json"))
	json.Unmarshal(raw, &ready)
	skiffPath := filepath.Join(dir, "tree", "bin", "skiff")
	key := filepath.Join(home, ".ssh", "skiff_admin_ed25519")
	_, httpPort, _ := net.SplitHostPort(ready.HTTP)
	// The router's port is not 80 here: the apps' address names it.
	for _, want := range []string{"Host key:    " + ready.HostKey, "sudo " + skiffPath + " keys:add", "ssh -i " + key + " -p ", "skiff@run.test",
		"Apps answer at http://<app>.run.test:" + httpPort + " "} {
		if ready.HostKey == "" || !strings.Contains(got, want) {
			t.Errorf("directions lack %q:\n%s", want, got)
		}
	}
	if fi, err := os.Stat(key); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4242 || fi.Mode().Perm() != 0o600 {
		t.Errorf("the admin key is not the sudo user's own: %v %v", fi, err)
	}
	if ready.Domain != "run.test" {
		t.Errorf("ready.json domain %q", ready.Domain)
	}
	// Again, with another domain, while the first daemon runs.
	second := runScript("SKIFF_DOMAIN=other.test")
	both, err := second.CombinedOutput()
	if err != nil || !strings.Contains(string(both), "The running skiff serves run.test; SKIFF_DOMAIN=other.test applies when it restarts") ||
		!strings.Contains(string(both), "skiff@run.test") || strings.Contains(string(both), "skiff@other.test") {
		t.Errorf("make run again with another domain: %v\n%s", err, both)
	}
	// The settings file (what make install writes) counts where the
	// environment sets nothing: sudo drops the caller's environment.
	defaults := filepath.Join(dir, "defaults")
	os.WriteFile(defaults, []byte("# skiff's settings\nSKIFF_DOMAIN=\"file.test\"\n"), 0o644)
	third, err := runScript("SKIFF_DEFAULTS=" + defaults).CombinedOutput()
	if err != nil || !strings.Contains(string(third), "The running skiff serves run.test; SKIFF_DOMAIN=file.test applies when it restarts") {
		t.Errorf("make run with SKIFF_DOMAIN in %s: %v\n%s", defaults, err, third)
	}
}
