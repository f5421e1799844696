package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a `skiff serve` of the bench's own: a fresh data directory,
// host resources of its own, ports chosen by the kernel.
type daemon struct {
	cfg   *config
	work  string // temporary; removed by stop
	data  string
	key   string // the admin's private key
	addr  struct{ SSH, HTTP string }
	cmd   *exec.Cmd
	log   *os.File
	http  *http.Client
	gitSH string // GIT_SSH_COMMAND
	once  sync.Once
}

func startDaemon(cfg *config) (*daemon, error) {
	work, err := os.MkdirTemp("/var/tmp", "skiff-bench-build-")
	if err != nil {
		return nil, err
	}
	// Sandboxed builds and instances run as unprivileged ids and reach
	// their files below the data directory.
	if err := os.Chmod(work, 0o711); err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, work: work, data: filepath.Join(work, "data"), key: filepath.Join(work, "admin"),
		http: &http.Client{Timeout: 5 * time.Second}}
	if d.log, err = os.Create(filepath.Join(work, "skiff.log")); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(cfg.skiff, "serve", "--data", d.data, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--https-addr", "127.0.0.1:0", "--domain", "skiff.bench", "--resource-prefix", cfg.prefix,
		"--network-pool", cfg.pool, "--debootstrap-cache", cfg.debootstrap, "--acme-ca", "")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(d.data, "ready.json"))
		if err == nil && json.Unmarshal(b, &d.addr) == nil {
			break
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("skiff serve not ready in 60s; see %s", d.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d.key).CombinedOutput(); err != nil {
		d.stop()
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, _ := os.Open(d.key + ".pub")
	defer pub.Close()
	if out, err := d.skiffCmd(pub, "keys:add", "bench", "--admin"); err != nil {
		d.stop()
		return nil, fmt.Errorf("keys:add: %v: %s", err, out)
	}
	d.gitSH = fmt.Sprintf("ssh -i %s -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR", d.key)
	return d, nil
}

func (d *daemon) skiffCmd(stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.Command(d.cfg.skiff, append([]string{"--data", d.data}, args...)...)
	cmd.Stdin = stdin
	return cmd.CombinedOutput()
}

// stop ends the daemon, removes what it put on the host and its data.
func (d *daemon) stop() { d.once.Do(d.stopOnce) }

func (d *daemon) stopOnce() {
	if d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		_ = d.cmd.Wait() // killed: its status says so
	}
	if out, err := exec.Command(d.cfg.skiff, "--data", d.data, "teardown", "--resource-prefix", d.cfg.prefix,
		"--network-pool", d.cfg.pool).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build-bench: teardown: %v\n%s", err, out)
	}
	d.log.Close()
	os.RemoveAll(d.work)
}

// step is one `-----> ` line of a command's output and when it came.
type step struct {
	at   time.Duration // since the command started
	text string
}

// builderCreate makes the default builder and returns its steps, timed.
func (d *daemon) builderCreate() ([]step, error) {
	cmd := exec.Command(d.cfg.skiff, "--data", d.data, "builder:create")
	var out bytes.Buffer
	t0 := time.Now()
	steps, err := timedSteps(cmd, &out, "")
	if err != nil {
		return nil, fmt.Errorf("builder:create: %v\n%s", err, out.String())
	}
	steps = append(steps, step{at: time.Since(t0), text: "(done)"})
	return steps, nil
}

// timedSteps runs cmd, timing each step line of its standard error (after
// prefix, such as git's "remote: "); all of it is also written to all.
func timedSteps(cmd *exec.Cmd, all io.Writer, prefix string) ([]step, error) {
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if cmd.Stdout == nil {
		cmd.Stdout = all
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var steps []step
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sc.Split(scanLinesCR)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(all, line)
			if s, ok := strings.CutPrefix(line, prefix); ok {
				if s, ok := strings.CutPrefix(strings.TrimSpace(s), "-----> "); ok {
					steps = append(steps, step{at: time.Since(t0), text: s})
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	return steps, err
}

// scanLinesCR splits on \n and on git's progress \r.
func scanLinesCR(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\n' || b == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// get fetches the app's page through the router.
func (d *daemon) get(app string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+d.addr.HTTP+"/", nil)
	req.Host = app + ".skiff.bench"
	resp, err := d.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), err
}
