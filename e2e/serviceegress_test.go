package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// A backing service reaches nothing itself: from inside the PostgreSQL
// server's container (psql there, as postgres:connect runs it), a
// connection to a listener on the host, or to the app linked to the
// service, fails; one to the server's own address, the control, gets an
// answer from PostgreSQL. (The reverse direction, who reaches the
// service, is TestServices'.)
func TestServiceReachesNothing(t *testing.T) {
	d, admin := fullDaemon(t)
	const app, db = "svcout", "svcoutdb"
	if r := d.git(admin, newRepo(t, pyApp("1")), "push", d.remote(app), "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	if r := d.ssh(admin, "", "postgres:create", db, "--disk", "128m"); r.code != 0 {
		t.Fatalf("postgres:create: %s", r)
	}
	defer d.ssh(admin, "", "postgres:destroy", db, "--force")
	if r := d.ssh(admin, "", "postgres:link", db, app); r.code != 0 {
		t.Fatalf("postgres:link: %s", r)
	}
	defer d.ssh(admin, "", "postgres:unlink", db, app)
	var ps []struct{ Addr string }
	if err := json.Unmarshal([]byte(d.ssh(admin, "", "ps", app, "--format", "json").stdout), &ps); err != nil || len(ps) == 0 || ps[0].Addr == "" {
		t.Fatalf("ps: %v %+v", err, ps)
	}
	info := d.serviceInfo(t, admin, "postgres", db)
	self, err := netip.ParseAddr(info.Address)
	if err != nil {
		t.Fatalf("the service's address %q: %v", info.Address, err)
	}

	l, accepted := countAccepts(t, "0.0.0.0:0", "")
	lport := l.Addr().(*net.TCPAddr).Port

	// connect asks psql, in the server's container, to open a session at
	// host:port, and returns what it said.
	connect := func(host string, port int) string {
		t.Helper()
		r := d.ssh(admin, fmt.Sprintf("\\c \"host=%s port=%d connect_timeout=3 dbname=x user=x password=x sslmode=disable\"\n", host, port), "postgres:connect", db)
		return r.stdout + r.stderr
	}
	// The control: the server's own address answers (and refuses the
	// made-up user), so the probe does reach what is reachable.
	if out := connect(self.String(), info.Port); !strings.Contains(out, `for user "x"`) && !strings.Contains(out, `role "x"`) && !strings.Contains(out, "pg_hba.conf") {
		t.Fatalf("the control, the server's own address, did not answer: %s", out)
	}
	appHost, appPort, _ := net.SplitHostPort(ps[0].Addr)
	var port int
	fmt.Sscan(appPort, &port)
	for what, target := range map[string]struct {
		host string
		port int
	}{
		"a listener on the host, at the service's gateway": {self.Prev().String(), lport},
		"the linked app's instance":                        {appHost, port},
	} {
		out := connect(target.host, target.port)
		if !strings.Contains(out, "timeout expired") && !strings.Contains(out, "Connection refused") && !strings.Contains(out, "No route to host") {
			t.Errorf("the service reached %s (%s:%d): %s", what, target.host, target.port, out)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host's listener accepted %d connections from the service", n)
	}
}
