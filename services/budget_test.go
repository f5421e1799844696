package services

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// TestCreatePastStorageBudget: a service's disks (PostgreSQL's WAL disk
// too) are asked of the storage budget before anything is made; a create
// they do not fit in is refused with the budget, what is given, what was
// asked and what to do, leaves nothing, and the name stays free; one that
// fits gets past the budget.
func TestCreatePastStorageBudget(t *testing.T) {
	r := newRig(t, 4<<30)
	m := r.manager(t)
	if _, err := r.p.CreateVolume(r.ctx, "uploads", 1<<30); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	// 8 GiB and a WAL disk of 2 GiB: the default disk does not fit in 3.
	_, err := m.Create(r.ctx, &skiff.ServiceRequest{Kind: skiff.ServicePostgres, Name: "mydb"}, &out)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("a create past the budget: %v", err)
	}
	for _, want := range []string{"storage budget is 4 GiB", "1 GiB of it is given to volumes and services", "(3 GiB left)",
		"postgres mydb (--disk 8 GiB, and 2 GiB besides for its write-ahead log), 10 GiB in all, does not fit",
		"a smaller --disk", "destroy storage or a service", "skiff serve --storage-budget"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if r.images.calls != 0 {
		t.Errorf("a refused create made images first")
	}
	if left := r.leftovers(t, "mydb"); len(left) != 1 { // uploads' directory
		t.Errorf("a refused create left %v", left)
	}
	// A smaller disk fits (2 GiB + 512 MiB of WAL): past the budget, the
	// create gets to the image, which this test cannot make; that undoes
	// the reservation, and the name is free again.
	_, err = m.Create(r.ctx, &skiff.ServiceRequest{Kind: skiff.ServicePostgres, Name: "mydb", DiskBytes: 2 << 30}, &out)
	if err == nil || !strings.Contains(err.Error(), "makes no service images") || r.images.calls != 1 {
		t.Fatalf("a create that fits: %v (images made %d times)", err, r.images.calls)
	}
	if left := r.leftovers(t, "mydb"); len(left) != 1 {
		t.Errorf("a create that failed after its reservation left %v", left)
	}
	// Redis has no WAL disk: 3 GiB fits exactly, a byte more does not.
	_, err = m.Create(r.ctx, &skiff.ServiceRequest{Kind: skiff.ServiceRedis, Name: "cache", DiskBytes: 3<<30 + 1}, &out)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "redis cache (--disk 3.0 GiB), 3.0 GiB in all, does not fit") || r.images.calls != 1 {
		t.Fatalf("redis past the budget: %v", err)
	}
	_, err = m.Create(r.ctx, &skiff.ServiceRequest{Kind: skiff.ServiceRedis, Name: "cache", DiskBytes: 3 << 30}, &out)
	if err == nil || !strings.Contains(err.Error(), "makes no service images") || r.images.calls != 2 {
		t.Fatalf("redis filling the budget: %v", err)
	}
	if left := r.leftovers(t, "cache"); len(left) != 1 {
		t.Errorf("left %v", left)
	}
}

// TestServiceDisksCountAfterUpgrade: a service made before its disks
// counted in the budget (its volume recorded with size 0) is counted for
// the disks it has once the daemon starts: data and WAL disk, the data
// disk alone for Redis, nothing for one made before services had disks.
func TestServiceDisksCountAfterUpgrade(t *testing.T) {
	r := newRig(t, 12<<30)
	disks := filepath.Join(r.cfg.DataDir, "disks")
	if err := os.MkdirAll(disks, 0o700); err != nil {
		t.Fatal(err)
	}
	made := map[string]*skiff.Service{}
	for i, c := range []struct {
		name, kind string
		data, wal  int64 // image sizes; 0: no image
	}{
		{"olddb", skiff.ServicePostgres, 8 << 30, 2 << 30},
		{"oldcache", skiff.ServiceRedis, 1 << 30, 0},
		{"olderdb", skiff.ServicePostgres, 0, 0},
	} {
		vol := &skiff.Volume{Name: volumeName(c.name), Service: c.name}
		if err := r.db.CreateVolume(r.ctx, vol); err != nil {
			t.Fatal(err)
		}
		svc := &skiff.Service{Name: c.name, Kind: c.kind, Version: "15", Image: "sha256:svc", RunAs: "999:999", Volume: vol.ID,
			Address: netip.AddrFrom4([4]byte{10, 239, 240, byte(4*i + 2)}).String(), Port: ports[c.kind], DiskBytes: c.data,
			Password: "x", State: skiff.ServiceReady}
		if err := r.db.CreateService(r.ctx, svc); err != nil {
			t.Fatal(err)
		}
		svc.State = skiff.ServiceReady
		if err := r.db.UpdateService(r.ctx, svc); err != nil {
			t.Fatal(err)
		}
		made[c.name] = svc
		for img, size := range map[string]int64{svc.ID + ".img": c.data, svc.ID + "-wal.img": c.wal} {
			if size > 0 {
				sparse(t, filepath.Join(disks, img), size)
			}
		}
		// It runs already (the daemon was restarted, its server not).
		if _, err := r.sched.Start(r.ctx, &skiff.InstanceSpec{AppID: svc.ID, AppName: svc.Name, Image: "sha256:svc", ProcessType: c.kind, Index: 1}); err != nil {
			t.Fatal(err)
		}
	}
	m := r.manager(t)
	for name, want := range map[string]int64{"olddb": 10 << 30, "oldcache": 1 << 30, "olderdb": 0} {
		v, err := r.db.FindVolume(r.ctx, volumeName(name))
		if err != nil || v.SizeBytes != want {
			t.Errorf("%s's volume after the start: %+v %v, want size %d", name, v, err, want)
		}
	}
	b, err := r.p.StorageBudget(r.ctx)
	if err != nil || b.GivenBytes != 11<<30 || b.BudgetBytes != 12<<30 || b.Left() != 1<<30 {
		t.Fatalf("budget %+v %v", b, err)
	}
	if _, err := r.p.CreateVolume(r.ctx, "uploads", 2<<30); skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "11 GiB of it is given") {
		t.Fatalf("a volume past what the services' disks left: %v", err)
	}
	// Destroying a service gives its disks back to the budget.
	if err := m.Destroy(r.ctx, made["olddb"], io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := r.p.CreateVolume(r.ctx, "uploads", 2<<30); err != nil {
		t.Fatalf("after olddb went: %v", err)
	}
}

func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
