package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func TestServices(t *testing.T) {
	db, _ := open(t)
	alice := addUser(t, db, "alice", false)
	ctx := as(alice)
	s := &skiff.Service{Name: "mydb", Kind: skiff.ServicePostgres, Version: "15", Address: "10.213.240.2", Port: 5432,
		Password: "secret", Limits: skiff.Limits{MemoryBytes: 256 << 20}}
	if err := db.CreateService(ctx, s); err != nil {
		t.Fatal(err)
	}
	if s.ID == "" || s.State != skiff.ServiceCreating || s.Owner != "alice" {
		t.Fatalf("created: %+v", s)
	}
	for name, dup := range map[string]*skiff.Service{
		"same name, other kind": {Name: "mydb", Kind: skiff.ServiceRedis, Version: "7", Address: "10.213.240.6", Port: 6379, Password: "x"},
		"same address":          {Name: "other", Kind: skiff.ServiceRedis, Version: "7", Address: "10.213.240.2", Port: 6379, Password: "x"},
	} {
		if err := db.CreateService(ctx, dup); skiff.ErrorCode(err) != skiff.ECONFLICT {
			t.Errorf("%s: %v, want a conflict", name, err)
		}
	}
	if err := db.CreateService(ctx, &skiff.Service{Name: "Bad Name", Kind: "redis"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("bad name: %v", err)
	}
	s.State, s.Image, s.Packages = skiff.ServiceReady, "sha256:abc", map[string]string{"postgresql-15": "15.13"}
	if err := db.UpdateService(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindService(ctx, "mydb")
	if err != nil || got.State != skiff.ServiceReady || got.Password != "secret" || got.Packages["postgresql-15"] != "15.13" ||
		got.Limits.MemoryBytes != 256<<20 || got.Address != "10.213.240.2" {
		t.Fatalf("found: %+v %v", got, err)
	}
	if _, err := db.FindService(ctx, "nope"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("missing: %v", err)
	}

	app := &skiff.App{Name: "web"}
	if err := db.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	l := &skiff.ServiceLink{ServiceID: s.ID, AppID: app.ID, Var: "DATABASE_URL"}
	if err := db.AddLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := db.AddLink(ctx, &skiff.ServiceLink{ServiceID: s.ID, AppID: app.ID, Var: "OTHER_URL"}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Errorf("second link of the pair: %v", err)
	}
	r := &skiff.Service{Name: "cache", Kind: skiff.ServiceRedis, Version: "7", Address: "10.213.240.6", Port: 6379, Password: "y"}
	if err := db.CreateService(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := db.AddLink(ctx, &skiff.ServiceLink{ServiceID: r.ID, AppID: app.ID, Var: "DATABASE_URL"}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Errorf("a var taken by another service: %v", err)
	}
	links, err := db.Links(ctx, s.ID)
	if err != nil || len(links) != 1 || !links[0].Pending || links[0].AppName != "web" {
		t.Fatalf("links: %+v %v", links, err)
	}
	if err := db.CompleteLink(ctx, s.ID, app.ID); err != nil {
		t.Fatal(err)
	}
	if links, _ := db.AppLinks(ctx, app.ID); len(links) != 1 || links[0].Pending {
		t.Fatalf("app links: %+v", links)
	}
	sch := &skiff.BackupSchedule{ServiceID: s.ID, Schedule: "0 3 * * *", Keep: 7}
	if err := db.SetBackupSchedule(ctx, s.ID, sch); err != nil {
		t.Fatal(err)
	}
	sch.LastRun = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	if err := db.SetBackupSchedule(ctx, s.ID, sch); err != nil {
		t.Fatal(err)
	}
	if all, err := db.BackupSchedules(ctx); err != nil || len(all) != 1 || all[0].Keep != 7 || !all[0].LastRun.Equal(sch.LastRun) {
		t.Fatalf("schedules: %+v %v", all, err)
	}
	// Destroying the app removes its links; destroying the service its schedule.
	if err := db.DeleteApp(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if links, _ := db.Links(ctx, ""); len(links) != 0 {
		t.Fatalf("links of a destroyed app: %+v", links)
	}
	if err := db.DeleteService(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := db.BackupSchedules(context.Background()); len(all) != 0 {
		t.Fatalf("schedules of a destroyed service: %+v", all)
	}
	if list, _ := db.ListServices(ctx); len(list) != 1 || list[0].Name != "cache" {
		t.Fatalf("list: %+v", list)
	}
}
