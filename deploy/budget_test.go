package deploy

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// TestServiceVolumesInStorageBudget: a backing service's volume, recorded
// with its disks' size, takes of the same budget as the apps' volumes: it
// is refused past it (nothing recorded), it counts against later volumes
// and growths, StorageBudget reports it, and storage:resize leaves it
// alone.
func TestServiceVolumesInStorageBudget(t *testing.T) {
	f := newPhaseFixture(t)
	f.p.cfg.StorageBudget, f.p.cfg.VolumeSize = 4<<30, 1<<30
	if _, err := f.p.CreateVolume(f.ctx, "uploads", 0); err != nil {
		t.Fatal(err)
	}
	big := &skiff.Volume{Name: "service-big", Service: "big", SizeBytes: 3<<30 + 1}
	err := f.p.ReserveServiceVolume(f.ctx, big, "postgres big (its disks)")
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("a service past the budget: %v", err)
	}
	for _, want := range []string{"storage budget is 4 GiB and 1 GiB of it is given to volumes and services already (3 GiB left)",
		"postgres big (its disks), 3.0 GiB in all, does not fit", "a smaller --disk", "skiff serve --storage-budget"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	if _, err := f.db.FindVolume(f.ctx, "service-big"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("a refused service volume was recorded: %v", err)
	}
	db := &skiff.Volume{Name: "service-db", Service: "db", SizeBytes: 2<<30 + 512<<20}
	if err := f.p.ReserveServiceVolume(f.ctx, db, ""); err != nil || db.ID == "" {
		t.Fatalf("a service that fits: %+v %v", db, err)
	}
	if err := f.p.ReserveServiceVolume(f.ctx, &skiff.Volume{Name: "service-db", Service: "db"}, ""); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("the same name again: %v", err)
	}
	if b, err := f.p.StorageBudget(f.ctx); err != nil || b.BudgetBytes != 4<<30 || b.GivenBytes != 3<<30+512<<20 || b.Left() != 512<<20 {
		t.Fatalf("budget %+v %v", b, err)
	}
	_, err = f.p.CreateVolume(f.ctx, "more", 0)
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "3.5 GiB of it is given to volumes and services") ||
		!strings.Contains(err.Error(), "a volume of 1 GiB does not fit") {
		t.Fatalf("a volume past what a service took: %v", err)
	}
	if err := f.p.ResizeVolume(f.ctx, "uploads", 2<<30); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("growing past what a service took: %v", err)
	}
	if err := f.p.ResizeVolume(f.ctx, "service-db", 3<<30); skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(err.Error(), "service db") {
		t.Fatalf("storage:resize of a service's volume: %v", err)
	}
	if err := f.p.ReserveServiceVolume(f.ctx, &skiff.Volume{Name: "loose", SizeBytes: 1}, ""); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("a volume of no service: %v", err)
	}
	// With no budget the sizes still add up, and nothing is refused.
	f.p.cfg.StorageBudget = 0
	if b, err := f.p.StorageBudget(f.ctx); err != nil || b.BudgetBytes != 0 || b.GivenBytes != 3<<30+512<<20 || b.Left() != -1 {
		t.Fatalf("no budget %+v %v", b, err)
	}
	if err := f.p.ReserveServiceVolume(f.ctx, &skiff.Volume{Name: "service-huge", Service: "huge", SizeBytes: 1 << 40}, ""); err != nil {
		t.Fatalf("no budget: %v", err)
	}
}
