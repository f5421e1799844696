package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/store"
)

// A service's disks take their size of the server's storage budget, with
// the apps' volumes: over SSH, a postgres:create past --storage-budget is
// refused before anything is made, saying the budget, what is given, what
// was asked and what to do; the name stays free; one that fits is made and
// counted in storage:report; a service recorded with no size (by an older
// skiff) is counted for its disks at the next start; destroying it gives
// its disks back.
func TestServicesInStorageBudget(t *testing.T) {
	requireFull(t)
	dir := sandboxDir(t)
	d := &daemon{t: t, dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer)}
	hr := hostResources(4)
	args := []string{"--resource-prefix", hr.prefix, "--network-pool", hr.pool, "--debootstrap-cache", debootstrapCache, "--acme-ca", "",
		"--storage-budget", "2g"}
	d.startFull(args...)
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.teardown(hr.prefix, hr.pool)
		}
	})
	admin := d.addUser("admin", true)
	if r := d.ssh(admin, "", "storage:ensure-directory", "uploads", "--size", "1g"); r.code != 0 {
		t.Fatal(r)
	}

	r := d.ssh(admin, "", "postgres:create", "bigdb")
	if r.code != 1 {
		t.Fatalf("a create past the budget: %s", r)
	}
	for _, want := range []string{"storage budget is 2 GiB and 1 GiB of it is given to volumes and services already (1 GiB left)",
		"postgres bigdb (--disk 8 GiB, and 2 GiB besides for its write-ahead log), 10 GiB in all, does not fit",
		"use a smaller --disk, destroy storage or a service no longer needed, or have an admin raise the budget (skiff serve --storage-budget)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal does not say %q: %s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "-----> ") {
		t.Errorf("a refused create did work first: %s", r.stderr)
	}
	if vols, _ := os.ReadDir(filepath.Join(d.data, "volumes")); len(vols) > 2 { // uploads: its image and mount point
		t.Errorf("a refused create left volumes: %v", vols)
	}
	if disks, _ := os.ReadDir(filepath.Join(d.data, "services", "disks")); len(disks) > 0 {
		t.Errorf("a refused create left disks: %v", disks)
	}
	if r := d.ssh(admin, "", "addons", "--format", "json"); strings.Contains(r.stdout, "bigdb") {
		t.Errorf("a refused service is listed: %s", r.stdout)
	}

	type report struct {
		Volumes []struct {
			Name      string
			Service   string
			SizeBytes int64 `json:"size_bytes"`
		}
		BudgetBytes int64 `json:"budget_bytes"`
		GivenBytes  int64 `json:"given_bytes"`
	}
	storage := func() report {
		t.Helper()
		var rep report
		if r := d.ssh(admin, "", "storage:report", "--format", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil {
			t.Fatalf("storage:report: %s", r)
		}
		return rep
	}
	if rep := storage(); len(rep.Volumes) != 1 || rep.BudgetBytes != 2<<30 || rep.GivenBytes != 1<<30 {
		t.Errorf("after the refusal: %+v", rep)
	}

	// The name is free; a disk of 128 MiB and its WAL disk of 256 MiB fit.
	if r := d.ssh(admin, "", "postgres:create", "bigdb", "--disk", "128m"); r.code != 0 {
		t.Fatalf("a create that fits: %s", r)
	}
	const given = 1<<30 + 384<<20
	rep := storage()
	if rep.GivenBytes != given || len(rep.Volumes) != 2 || rep.Volumes[0].Name != "service-bigdb" || rep.Volumes[0].SizeBytes != 384<<20 {
		t.Errorf("with the service: %+v", rep)
	}
	if r := d.ssh(admin, "", "storage:report"); !strings.Contains(r.stdout, "Budget: 2.0G, of which 1.4G is given to volumes and services, 640M left") {
		t.Errorf("storage:report: %s", r)
	}
	if r := d.ssh(admin, "", "redis:create", "cache", "--disk", "700m"); r.code != 1 ||
		!strings.Contains(r.stderr, "(640 MiB left): redis cache (--disk 700 MiB), 700 MiB in all, does not fit") {
		t.Errorf("redis past what is left: %s", r)
	}
	if r := d.ssh(admin, "", "storage:resize", "service-bigdb", "1g"); r.code != 1 || !strings.Contains(r.stderr, "holds the data of service bigdb") {
		t.Errorf("storage:resize of a service's volume: %s", r)
	}

	// An older skiff recorded a service's volume with no size: the next
	// start counts its disks.
	d.restart(args, func() {
		db, err := store.Open(context.Background(), filepath.Join(d.data, "skiff.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.SetVolumeSize(context.Background(), "service-bigdb", 0); err != nil {
			t.Fatal(err)
		}
	})
	if rep := storage(); rep.GivenBytes != given {
		t.Errorf("after a start with the size unrecorded: %+v", rep)
	}
	if r := d.ssh(admin, "", "postgres:destroy", "bigdb", "--force"); r.code != 0 {
		t.Fatal(r)
	}
	if rep := storage(); rep.GivenBytes != 1<<30 {
		t.Errorf("after the destroy: %+v", rep)
	}
}
