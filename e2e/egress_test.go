package e2e

import (
	"strings"
	"testing"
)

// builder:set cannot make the daemon connect where only the host should:
// not a loopback listener, not the daemon's own SSH port (whose banner once
// came back in the error), not another app's instance on the private pool.
// A user who is not an admin pulls nothing at all; an admin's pull of a
// non-public registry is refused before any connection, with directions.
func TestBuilderSetCannotReachTheHost(t *testing.T) {
	d, admin := fullDaemon(t)
	l, accepted := countAccepts(t, "127.0.0.1:0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	if r := d.ssh(admin, "", "apps:create", "egress"); r.code != 0 {
		t.Fatal(r)
	}
	bob := d.addUser("egressbob", false)
	if r := d.ssh(admin, "", "access:add", "egress", "egressbob"); r.code != 0 {
		t.Fatal(r)
	}
	targets := []string{l.Addr().String() + "/x:1", "127.0.0.1:" + d.port() + "/x:1", "localhost:" + d.port() + "/x:1",
		"169.254.169.254/latest:1", hostResources(0).pool[:strings.LastIndex(hostResources(0).pool, ".")] + ".6:8080/x:1"}
	for _, ref := range targets {
		r := d.ssh(bob, "", "builder:set", "egress", ref)
		if r.code == 0 || !strings.Contains(r.stderr, "for admins") {
			t.Errorf("a user's builder:set %s: %s", ref, r)
		}
		r = d.ssh(admin, "", "builder:set", "egress", ref)
		if r.code == 0 || !strings.Contains(r.stderr, "--allow-registry") {
			t.Errorf("an admin's builder:set %s: %s", ref, r)
		}
		if strings.Contains(r.stderr, "SSH-2.0") || strings.Contains(r.stderr, "connection refused") {
			t.Errorf("builder:set %s told what answered there: %s", ref, r.stderr)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the loopback listener got %d connections", n)
	}
	// The default builder is on the server: anyone with access picks it.
	if r := d.ssh(bob, "", "builder:set", "egress", "default"); r.code != 0 {
		t.Errorf("builder:set default by a user: %s", r)
	}
	if r := d.ssh(bob, "", "builder:set", "egress", "skiff.local/builder:latest"); r.code != 0 {
		t.Errorf("builder:set of a stored builder by a user: %s", r)
	}
}
