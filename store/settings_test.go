package store_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// SetSettings writes what changed, one audit event naming it; keys it does
// not know stay; a value that no longer parses is reported with its key,
// and storing a change repairs it.
func TestSettingsStore(t *testing.T) {
	db, path := open(t)
	ctx := as(addUser(t, db, "alice", true))
	app := &skiff.App{Name: "shop"}
	if err := db.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	s := &skiff.Settings{Check: skiff.HealthCheck{Path: "/up", Timeout: 2 * time.Second}, Maintenance: true}
	if err := db.SetSettings(ctx, app.ID, "checks:set", s); err != nil {
		t.Fatal(err)
	}
	s.Maintenance = false
	if err := db.SetSettings(ctx, app.ID, "maintenance:off", s); err != nil {
		t.Fatal(err)
	}
	events, err := db.ListEvents(ctx, skiff.EventFilter{AppID: app.ID, Limit: 2})
	if err != nil || len(events) != 2 {
		t.Fatalf("events %v %v", events, err)
	}
	if events[0].Action != "maintenance:off" || events[0].Detail != "maintenance=" || events[1].Detail != "checks.path=/up checks.timeout=2 maintenance=on" {
		t.Fatalf("events %+v %+v", events[0], events[1])
	}
	if got, err := db.Settings(ctx, app.ID); err != nil || got.Check.Path != "/up" || got.Maintenance {
		t.Fatalf("read back %+v %v", got, err)
	}
	if err := db.SetSettings(ctx, app.ID, "x", &skiff.Settings{Check: skiff.HealthCheck{Path: "no-slash"}}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("an invalid value was stored: %v", err)
	}

	// What the store holds is changed behind skiff's back.
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO app_settings (app_id, key, value) VALUES (?, 'checks.deadline', 'soon'), (?, 'future.key', 'kept')`, app.ID, app.ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.Settings(ctx, app.ID)
	if skiff.ErrorCode(err) != skiff.EINVALID || !strings.Contains(skiff.ErrorMessage(err), "checks.deadline") || got == nil || got.Check.Path != "/up" || got.Check.Deadline != 0 {
		t.Fatalf("a bad stored value: %+v %v", got, err)
	}
	if err := db.SetSettings(ctx, app.ID, "checks:set", got); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settings(ctx, app.ID); err != nil {
		t.Fatalf("after storing a change: %v", err)
	}
	var kept string
	if err := raw.QueryRow(`SELECT value FROM app_settings WHERE app_id = ? AND key = 'future.key'`, app.ID).Scan(&kept); err != nil || kept != "kept" {
		t.Fatalf("an unknown key: %q %v", kept, err)
	}
}
