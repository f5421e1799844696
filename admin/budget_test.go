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
		LeftBytes   int64            `json:"left_bytes"`
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
	if j.LeftBytes != 512<<20 {
		t.Errorf("storage:report --format json: left %d", j.LeftBytes)
	}
	// Another user sees only their own storage, and of the budget only what
	// is left: never its size or what the others' volumes and services take.
	s.must("alice", "storage:ensure-directory", "alicevol", "--size", "256m")
	othersTotals := []string{"4.0G", "4 GiB", "3.5", "3.8", "given", "uploads", "service-db"}
	r = s.must("alice", "storage:report")
	contains(t, "alice's storage:report", r.stdout, "alicevol", "256M", "Budget: 256M left")
	for _, never := range othersTotals {
		if strings.Contains(r.String(), never) {
			t.Errorf("alice's storage:report shows %q:\n%s", never, r)
		}
	}
	var aj map[string]any
	if err := json.Unmarshal([]byte(s.must("alice", "storage:report", "--format", "json").stdout), &aj); err != nil {
		t.Fatal(err)
	}
	if _, ok := aj["budget_bytes"]; ok || aj["given_bytes"] != nil || aj["left_bytes"] != float64(256<<20) || aj["size_bytes"] != float64(256<<20) {
		t.Errorf("alice's storage:report --format json: %v", aj)
	}
	// Her refused volume, or service, says what is left, and no more.
	err := s.pipeline.ReserveServiceVolume(skiff.WithActor(context.Background(), s.users["alice"]), &skiff.Volume{Name: "service-alicedb", Service: "alicedb", SizeBytes: 1 << 30}, "")
	for msg, want := range map[string]string{
		s.run("alice", "", "storage:ensure-directory", "big", "--size", "1g").stderr: "the server's storage budget has 256 MiB left: a volume of 1 GiB does not fit",
		skiff.ErrorMessage(err): "the server's storage budget has 256 MiB left: service alicedb, 1 GiB in all, does not fit",
		// Its own 256 MiB count as room for it.
		s.run("alice", "", "storage:resize", "alicevol", "1g").stderr: "the server's storage budget leaves room for alicevol of 512 MiB at most: a volume of 1 GiB does not fit",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("alice's refusal does not say %q: %s", want, msg)
		}
		for _, never := range othersTotals {
			if strings.Contains(msg, never) {
				t.Errorf("alice's refusal shows %q: %s", never, msg)
			}
		}
	}
	// The admin is told everything, her volume included.
	if r := s.run("root", "", "storage:ensure-directory", "more", "--size", "1g"); r.code != 1 ||
		!strings.Contains(r.stderr, "the server's storage budget is 4 GiB and 3.8 GiB of it is given to volumes and services already (256 MiB left)") {
		t.Errorf("the admin's refusal: %s", r)
	}
	contains(t, "root's storage:report", s.must("root", "storage:report").stdout, "alicevol", "uploads", "service-db",
		"Budget: 4.0G, of which 3.8G is given to volumes and services, 256M left")
}

// Without a budget, a user's storage:report says so, and not what all
// volumes take; an admin's says that too.
func TestStorageReportNoBudget(t *testing.T) {
	s := newServer(t)
	s.must("root", "storage:ensure-directory", "uploads", "--size", "1g")
	s.must("alice", "storage:ensure-directory", "alicevol", "--size", "256m")
	r := s.must("alice", "storage:report")
	if !strings.Contains(r.stdout, "Budget: none set; the server's disk is the limit") || strings.Contains(r.String(), "given") || strings.Contains(r.String(), "1.2G") {
		t.Errorf("alice's storage:report: %s", r)
	}
	if r := s.must("alice", "storage:report", "--format", "json"); strings.Contains(r.stdout, "_bytes\": 1342177280") || strings.Contains(r.stdout, "given_bytes") || strings.Contains(r.stdout, "left_bytes") {
		t.Errorf("alice's storage:report --format json: %s", r.stdout)
	}
	contains(t, "root's storage:report", s.must("root", "storage:report").stdout, "Budget: none set", "1.2G given to volumes and services")
}
