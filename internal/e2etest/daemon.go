package e2etest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Ready is what `skiff serve` writes to DATA/ready.json once it listens.
type Ready struct {
	SSH, HTTP, HTTPS string
}

// ServeArgs is `serve` on data with every listener on 127.0.0.1, port 0,
// for the domain skiff.test, then args.
func ServeArgs(data string, args ...string) []string {
	return append([]string{"serve", "--data", data, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--https-addr", "127.0.0.1:0", "--domain", "skiff.test"}, args...)
}

// ErrExited is WaitReady's error when the daemon exited first.
var ErrExited = fmt.Errorf("the daemon exited")

// WaitReady waits up to timeout for the daemon on data to be ready (remove
// the ready file before starting it) and returns its addresses; it stops
// early with ErrExited once exited is closed.
func WaitReady(data string, timeout time.Duration, exited <-chan struct{}) (Ready, error) {
	deadline := time.Now().Add(timeout)
	for {
		var r Ready
		if b, err := os.ReadFile(filepath.Join(data, "ready.json")); err == nil && json.Unmarshal(b, &r) == nil {
			return r, nil
		}
		select {
		case <-exited:
			return Ready{}, ErrExited
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return Ready{}, fmt.Errorf("the daemon was not ready in %s", timeout)
		}
	}
}

// TeardownArgs is `skiff teardown` of what a daemon on data with these
// host resources put on the host.
func TeardownArgs(data, prefix, pool string) []string {
	return []string{"--data", data, "teardown", "--resource-prefix", prefix, "--network-pool", pool}
}
