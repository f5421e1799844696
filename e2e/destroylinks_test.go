package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// apps:destroy of an app linked to a database says the database stays
// (and how it goes), and takes the app's paths to it out of the firewall
// with its network groups' sets: nothing of the app is left in the table,
// while another app's link to the same database stays open.
func TestDestroyLinkedApp(t *testing.T) {
	d, admin := fullDaemon(t)
	const gone, stays, db = "linkgone", "linkstays", "linkdb"
	for _, app := range []string{gone, stays} {
		if r := d.git(admin, newRepo(t, pyApp("1")), "push", d.remote(app), "main"); r.code != 0 {
			t.Fatalf("push %s: %s", app, r)
		}
	}
	defer d.ssh(admin, "", "apps:destroy", gone, "--force")
	defer d.ssh(admin, "", "apps:destroy", stays, "--force")
	if r := d.ssh(admin, "", "postgres:create", db, "--disk", "128m"); r.code != 0 {
		t.Fatalf("postgres:create: %s", r)
	}
	defer d.ssh(admin, "", "postgres:destroy", db, "--force")
	id := func(app string) string {
		var info struct{ ID string }
		if err := json.Unmarshal([]byte(d.ssh(admin, "", "apps:info", app, "--format", "json").stdout), &info); err != nil || info.ID == "" {
			t.Fatalf("apps:info %s: %v", app, err)
		}
		return info.ID
	}
	goneID, staysID := id(gone), id(stays)
	for _, app := range []string{gone, stays} {
		if r := d.ssh(admin, "", "postgres:link", db, app, "--builds"); r.code != 0 {
			t.Fatalf("postgres:link %s: %s", app, r)
		}
	}
	defer d.ssh(admin, "", "postgres:unlink", db, stays)
	ruleset := func() string {
		out, err := exec.Command("nft", "list", "ruleset").Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if rs := ruleset(); !strings.Contains(rs, "link "+goneID+" ") || !strings.Contains(rs, "set g-"+goneID+" ") {
		t.Fatalf("the link of %s (%s) is not in the firewall:\n%s", gone, goneID, rs)
	}
	r := d.ssh(admin, "", "apps:destroy", gone, "--force")
	if r.code != 0 {
		t.Fatalf("apps:destroy: %s", r)
	}
	if strings.Contains(r.stderr, "add-ons") || !strings.Contains(r.stderr, "Unlinked postgres "+db+" (DATABASE_URL); it stays, with its data: postgres:destroy "+db+" --force removes it") {
		t.Errorf("apps:destroy does not say that %s stays:\n%s", db, r.stderr)
	}
	rs := ruleset()
	if strings.Contains(rs, goneID) {
		t.Errorf("the destroyed app %s (%s) is still in the firewall:\n%s", gone, goneID, rs)
	}
	if !strings.Contains(rs, "link "+staysID+" ") || !strings.Contains(rs, "link b-"+staysID+" ") {
		t.Errorf("the link of %s (%s) went with %s's:\n%s", stays, staysID, gone, rs)
	}
	if info := d.serviceInfo(t, admin, "postgres", db); info.Address == "" {
		t.Errorf("the database went with the app: %+v", info)
	}
	// Destroyed at last with Heroku's spelling, which names it; another
	// name is no confirmation.
	if r := d.ssh(admin, "", "postgres:unlink", db, stays); r.code != 0 {
		t.Fatalf("postgres:unlink: %s", r)
	}
	if r := d.ssh(admin, "", "postgres:destroy", db, "--confirm", stays); r.code == 0 || !strings.Contains(r.stderr, "--confirm "+db) {
		t.Fatalf("postgres:destroy --confirm <another name>: %s", r)
	}
	if info := d.serviceInfo(t, admin, "postgres", db); info.Address == "" {
		t.Fatalf("the database went with a wrong confirmation: %+v", info)
	}
	if r := d.ssh(admin, "", "postgres:destroy", db, "--confirm", db); r.code != 0 {
		t.Fatalf("postgres:destroy --confirm %s: %s", db, r)
	}
}
