package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// activatedListeners returns the listening sockets that systemd passed
// (socket activation: LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; see
// contrib/skiff-*.socket), by name: "ssh", "http", "https". systemd keeps
// them open while skiff restarts, so connections that arrive meanwhile wait
// in the socket's queue instead of being refused. Without socket activation
// it returns nothing and serve binds its own addresses.
func activatedListeners() (map[string]net.Listener, error) {
	defer func() {
		// Not for the processes skiff starts (git, hooks, builds).
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	out := map[string]net.Listener{}
	for i := range n {
		const first = 3 // SD_LISTEN_FDS_START
		name := ""
		if i < len(names) {
			name = names[i]
		}
		f := os.NewFile(uintptr(first+i), name)
		l, err := net.FileListener(f)
		f.Close() // FileListener holds its own descriptor
		if err != nil {
			return nil, fmt.Errorf("socket %d (%q) from systemd: %w", first+i, name, err)
		}
		switch name {
		case "ssh", "http", "https":
			if out[name] != nil {
				return nil, fmt.Errorf("systemd passed two sockets named %q", name)
			}
			out[name] = l
		default:
			l.Close()
			return nil, fmt.Errorf("systemd passed a socket named %q; name them ssh, http and https (FileDescriptorName=)", name)
		}
	}
	return out, nil
}
