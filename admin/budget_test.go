package admin_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/store"
)

// TestStorageReportBudget: storage:report shows the server's storage
// budget and what of it is given, a backing service's disks with the
// apps' volumes; storage:resize leaves a service's volume alone.
func TestStorageReportBudget(t *testing.T) {
	s := newServer(t, func(_ *store.DB, dcfg *deploy.Config, _ *admin.Services) { dcfg.StorageBudget = 4 << 30 })
	s.must("root", "storage:ensure-directory", "uploads", "--size", "1g")
	// A PostgreSQL service's volume as services records it: --disk 2g
	// and its WAL disk of 512 MiB.
	vol := &skiff.Volume{Name: "service-db", Service: "db", SizeBytes: 2<<30 + 512<<20}
	if err := s.pipeline.ReserveServiceVolume(skiff.WithActor(context.Background(), s.users["root"]), vol, "postgres db"); err != nil {
		t.Fatal(err)
	}
	r := s.must("root", "storage:report")
	for _, want := range []string{"service-db", "service db", "2.5G", "Total: ", "of 3.5G",
		"Budget: 4.0G, of which 3.5G is given to volumes and services, 512M left (skiff serve --storage-budget)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("storage:report does not show %q:\n%s", want, r.stdout)
		}
	}
	var j struct {
		Volumes     []map[string]any `json:"volumes"`
		SizeBytes   int64            `json:"size_bytes"`
		BudgetBytes int64            `json:"budget_bytes"`
		GivenBytes  int64            `json:"given_bytes"`
	}
	if err := json.Unmarshal([]byte(s.must("root", "storage:report", "--format", "json").stdout), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Volumes) != 2 || j.SizeBytes != 3<<30+512<<20 || j.BudgetBytes != 4<<30 || j.GivenBytes != 3<<30+512<<20 {
		t.Errorf("storage:report --format json: %+v", j)
	}
	if r := s.run("root", "", "storage:ensure-directory", "more", "--size", "1g"); r.code != 1 ||
		!strings.Contains(r.stderr, "3.5 GiB of it is given to volumes and services already (512 MiB left)") {
		t.Errorf("a volume past what the service took: %s", r)
	}
	if r := s.run("root", "", "storage:resize", "service-db", "3g"); r.code != 1 || !strings.Contains(r.stderr, "holds the data of service db") {
		t.Errorf("storage:resize of a service's volume: %s", r)
	}
	// Another user sees only their own storage, and the server's budget.
	if r := s.must("alice", "storage:report"); strings.Contains(r.stdout, "service-db") || strings.Contains(r.stdout, "uploads") ||
		!strings.Contains(r.stdout, "Budget: 4.0G") {
		t.Errorf("alice's storage:report: %s", r)
	}
}
