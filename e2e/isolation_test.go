package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
)

// Probes run inside a deployed app: it is no root, has no capabilities,
// cannot gain privileges, and reaches neither another app's instance nor
// the host's own services, nor sees another app's files.
func TestIsolationProbes(t *testing.T) {
	d, admin := fullDaemon(t)
	const a, b = "iso-a", "iso-b"
	canary := fmt.Sprintf("canary-%d", len(t.Name())*7919)
	files := pyApp("1")
	files[canary] = "secret of b\n"
	for name, f := range map[string]map[string]string{a: pyApp("1"), b: files} {
		if r := d.git(admin, newRepo(t, f), "push", d.remote(name), "main"); r.code != 0 {
			t.Fatalf("push %s: %s", name, r)
		}
		defer d.ssh(admin, "", "apps:destroy", name, "--force")
	}
	var psB []struct{ Addr string }
	if err := json.Unmarshal([]byte(d.ssh(admin, "", "ps", b, "--format", "json").stdout), &psB); err != nil || len(psB) == 0 || psB[0].Addr == "" {
		t.Fatalf("ps of b: %v %+v", err, psB)
	}
	_, sshPort, _ := net.SplitHostPort(d.addr.SSH)
	_, httpPort, _ := net.SplitHostPort(d.addr.HTTP)
	probe := `import os, socket, subprocess
def reach(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, int(port)))
        return "open"
    except Exception as e:
        return "closed"
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
gw = [l.split() for l in open("/proc/net/route").read().splitlines()[1:] if l.split()[1] == "00000000"]
gateway = socket.inet_ntoa(bytes.fromhex(gw[0][2])[::-1]) if gw else "none"
host, port = "%s".rsplit(":", 1)
control = socket.socket()
control.bind(("127.0.0.1", 0))
control.listen()
print("control", reach("127.0.0.1", control.getsockname()[1]))
print("uid", os.getuid())
print("capeff", status["CapEff"].strip())
print("nonewprivs", status["NoNewPrivs"].strip())
print("seccomp", status["Seccomp"].strip())
print("other-app", reach(host, port))
print("host-ssh", reach(gateway, %s))
print("host-http", reach(gateway, %s))
print("loopback-ssh", reach("127.0.0.1", %s))
found = subprocess.run(["find", "/", "-xdev", "-name", "%s"], capture_output=True, text=True).stdout.strip()
print("canary", found or "none")
`
	script := fmt.Sprintf(probe, psB[0].Addr, sshPort, httpPort, sshPort, canary)
	r := d.ssh(admin, script, "run", a, "python3", "-")
	if r.code != 0 {
		t.Fatalf("probe: %s", r)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	want := map[string]string{"control": "open", "capeff": "0000000000000000", "nonewprivs": "1", "seccomp": "2", "other-app": "closed",
		"host-ssh": "closed", "host-http": "closed", "loopback-ssh": "closed", "canary": "none"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if got["uid"] == "0" || got["uid"] == "" {
		t.Errorf("the app runs as uid %q", got["uid"])
	}
	// The router, on the host, does reach b.
	if code, _ := d.get(t, hostOf(b), "/"); code != 200 {
		t.Errorf("the router cannot reach b: %d", code)
	}
}
