package runtime

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// hostNameservers returns the host's resolvers that an instance can use:
// loopback ones (systemd-resolved's 127.0.0.53, a local dnsmasq) are on the
// host, which instances cannot reach, so the upstream list systemd-resolved
// keeps is tried next.
func hostNameservers() []string {
	for _, f := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		var ns []string
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "nameserver" {
				if a, err := netip.ParseAddr(fields[1]); err == nil && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
					ns = append(ns, a.String())
				}
			}
		}
		file.Close()
		if len(ns) > 0 {
			return ns
		}
	}
	return nil
}

// writeNetFiles writes the instance's /etc/resolv.conf and /etc/hosts into
// its directory, to be bind-mounted read-only over the image's.
func writeNetFiles(dir, hostname string, nameservers []string) (resolv, hosts string, err error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", "", err
	}
	var rb strings.Builder
	for _, n := range nameservers {
		rb.WriteString("nameserver " + n + "\n")
	}
	resolv, hosts = filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts")
	if err := os.WriteFile(resolv, []byte(rb.String()), 0o644); err != nil {
		return "", "", err
	}
	h := "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if err := os.WriteFile(hosts, []byte(h), 0o644); err != nil {
		return "", "", err
	}
	return resolv, hosts, nil
}
