package store_test

import (
	"slices"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestReleases(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "alice", true))
	app := &skiff.App{Name: "web"}
	db.CreateApp(ctx, app)
	if _, err := db.CurrentRelease(ctx, app.ID); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("current release of a new app: %v", err)
	}
	db.UpdateConfig(ctx, app.ID, &skiff.ConfigChange{Set: map[string]string{"A": "1", "B": "x\ny=z"}})

	r1 := &skiff.Release{AppID: app.ID, Image: "sha256:1", Config: map[string]string{"A": "1"}, ProcessTypes: map[string]string{"web": "serve"}, Description: "Deploy 1"}
	if err := db.CreateRelease(ctx, r1); err != nil || r1.Version != 1 || r1.Status != skiff.ReleasePending {
		t.Fatalf("create: %+v %v", r1, err)
	}
	if err := db.DeployRelease(ctx, app.ID, 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.DeployRelease(ctx, app.ID, 1, nil); err == nil {
		t.Fatal("deployed a release twice")
	}
	// A config change lands with its release, atomically.
	ch := &skiff.ConfigChange{Set: map[string]string{"C": "3"}, Unset: []string{"A"}}
	r2 := &skiff.Release{AppID: app.ID, Image: "sha256:1", Config: ch.Apply(map[string]string{"A": "1", "B": "x\ny=z"}), Description: "Set C, unset A"}
	db.CreateRelease(ctx, r2)
	if cfg, _ := db.Config(ctx, app.ID); cfg["A"] != "1" || cfg["C"] != "" {
		t.Fatalf("config changed before the release deployed: %v", cfg)
	}
	if err := db.DeployRelease(ctx, app.ID, r2.Version, ch); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := db.Config(ctx, app.ID); cfg["A"] != "" || cfg["C"] != "3" || cfg["B"] != "x\ny=z" {
		t.Fatalf("config after deploy: %q", cfg)
	}
	cur, err := db.CurrentRelease(ctx, app.ID)
	if err != nil || cur.Version != 2 || !cur.Current {
		t.Fatalf("current: %+v %v", cur, err)
	}
	// A failed release leaves the current one, and numbers never repeat.
	r3 := &skiff.Release{AppID: app.ID, Image: "sha256:3", Description: "Deploy 3"}
	db.CreateRelease(ctx, r3)
	if n, err := db.FailPendingReleases(ctx, "daemon restart"); err != nil || n != 1 {
		t.Fatalf("fail pending: %d %v", n, err)
	}
	r4 := &skiff.Release{AppID: app.ID, Image: "sha256:4", Description: "Deploy 4"}
	db.CreateRelease(ctx, r4)
	if r4.Version != 4 {
		t.Fatalf("version after a failed release: %d", r4.Version)
	}
	rels, _ := db.ListReleases(ctx, app.ID, 0)
	var got []string
	for _, r := range rels {
		got = append(got, string(r.Status))
	}
	if want := []string{"pending", "failed", "deployed", "deployed"}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	images, _ := db.ReleaseImages(ctx, 1)
	slices.Sort(images)
	if !slices.Equal(images, []string{"sha256:1", "sha256:4"}) {
		t.Fatalf("images to keep: %v", images)
	}
}

func TestBuildsAndFormation(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "alice", true))
	app := &skiff.App{Name: "web"}
	db.CreateApp(ctx, app)
	b := &skiff.Build{AppID: app.ID, Commit: "abc"}
	if err := db.CreateBuild(ctx, b); err != nil || b.ID != 1 || b.Actor != "alice" {
		t.Fatalf("build: %+v %v", b, err)
	}
	b.Status, b.Image, b.Buildpacks = skiff.BuildSucceeded, "sha256:x", []string{"skiff/go@1"}
	db.FinishBuild(ctx, b)
	got, err := db.FindBuild(ctx, app.ID, 1)
	if err != nil || got.Status != skiff.BuildSucceeded || got.Buildpacks[0] != "skiff/go@1" || got.FinishedAt.IsZero() {
		t.Fatalf("found %+v %v", got, err)
	}
	db.CreateBuild(ctx, &skiff.Build{AppID: app.ID, Commit: "def"})
	if n, _ := db.FailRunningBuilds(ctx, "restart"); n != 1 {
		t.Fatalf("failed %d running builds", n)
	}

	f := skiff.Formation{"web": {Quantity: 2, Limits: skiff.Limits{MemoryBytes: 256 << 20}}}
	if err := db.SetFormation(ctx, app.ID, f); err != nil {
		t.Fatal(err)
	}
	db.SetFormation(ctx, app.ID, skiff.Formation{"worker": {Quantity: 1}})
	got2, _ := db.Formation(ctx, app.ID)
	if got2["web"].Quantity != 2 || got2["web"].Limits.MemoryBytes != 256<<20 || got2["worker"].Quantity != 1 {
		t.Fatalf("formation %+v", got2)
	}
}

func TestDomains(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "alice", true))
	a, b := &skiff.App{Name: "one"}, &skiff.App{Name: "two"}
	db.CreateApp(ctx, a)
	db.CreateApp(ctx, b)
	if err := db.AddDomain(ctx, a.ID, "www.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddDomain(ctx, a.ID, "www.example.com"); err != nil {
		t.Fatal("adding an app's own domain again:", err)
	}
	if err := db.AddDomain(ctx, b.ID, "www.example.com"); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("another app's domain: %v", err)
	}
	if err := db.RemoveDomain(ctx, b.ID, "www.example.com"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("removing another app's domain: %v", err)
	}
	db.SetSettings(ctx, a.ID, "maintenance:on", &skiff.Settings{Maintenance: true})
	if s, _ := db.Settings(ctx, a.ID); !s.Maintenance {
		t.Fatalf("settings %v", s)
	}
	db.DeleteApp(ctx, a.ID)
	if err := db.AddDomain(ctx, b.ID, "www.example.com"); err != nil {
		t.Fatal("a destroyed app's domain is not free:", err)
	}
}
