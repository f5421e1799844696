package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/store"
)

func open(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "skiff.db")
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func as(u *skiff.User) context.Context {
	return skiff.WithActor(context.Background(), &skiff.Actor{Name: u.Name, User: u, Fingerprint: "SHA256:test"})
}

func addUser(t *testing.T, db *store.DB, name string, admin bool) *skiff.User {
	t.Helper()
	u, err := db.AddKey(context.Background(), name, admin, &skiff.Key{Fingerprint: "SHA256:" + name, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAA" + name})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPragmas(t *testing.T) {
	_, path := open(t)
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var mode string
	if err := raw.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var version int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version < 1 {
		t.Fatalf("user_version = %d, %v", version, err)
	}
}

func TestReopenAndNewerSchema(t *testing.T) {
	db, path := open(t)
	ctx := context.Background()
	if err := db.CreateApp(ctx, &skiff.App{Name: "keep"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal("reopen:", err)
	}
	if _, err := db2.FindAppByName(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	db2.Close()
	raw, _ := sql.Open("sqlite3", "file:"+path)
	if _, err := raw.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if db3, err := store.Open(ctx, path); err == nil {
		db3.Close()
		t.Fatal("opened a database from a newer schema")
	}
}

func TestApps(t *testing.T) {
	db, _ := open(t)
	alice := addUser(t, db, "alice", false)
	bob := addUser(t, db, "bob", false)
	admin := addUser(t, db, "root", true)
	ctx := as(alice)

	app := &skiff.App{Name: "web"}
	if err := db.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if app.ID == "" || app.Owner != "alice" || app.DeployBranch != "main" {
		t.Fatalf("created %+v", app)
	}
	if err := db.CreateApp(as(bob), &skiff.App{Name: "web"}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := db.CreateApp(ctx, &skiff.App{Name: "../x"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := db.FindAppByName(ctx, "nope"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("missing app: %v", err)
	}

	for _, tc := range []struct {
		user *skiff.User
		want int
	}{{alice, 1}, {bob, 0}, {admin, 1}} {
		apps, err := db.ListApps(ctx, skiff.AppFilter{VisibleTo: tc.user})
		if err != nil || len(apps) != tc.want {
			t.Fatalf("%s sees %d apps (%v), want %d", tc.user.Name, len(apps), err, tc.want)
		}
	}
	if ok, _ := db.HasAccess(ctx, app.ID, bob); ok {
		t.Fatal("bob has access before a grant")
	}
	if err := db.GrantAccess(ctx, app.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.HasAccess(ctx, app.ID, bob); !ok {
		t.Fatal("bob has no access after a grant")
	}
	if err := db.GrantAccess(ctx, app.ID, "carol"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("grant to unknown user: %v", err)
	}
	if err := db.RevokeAccess(ctx, app.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.HasAccess(ctx, app.ID, bob); ok {
		t.Fatal("bob keeps access after revoke")
	}

	if err := db.RenameApp(ctx, app.ID, "site"); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindAppByID(ctx, app.ID)
	if err != nil || got.Name != "site" {
		t.Fatalf("after rename: %+v %v", got, err)
	}
	if err := db.DeleteApp(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindAppByID(ctx, app.ID); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("deleted app still found: %v", err)
	}
	// The audit trail outlives the app, newest first, with the actor.
	events, err := db.ListEvents(ctx, skiff.EventFilter{AppID: app.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
		if e.Actor != "alice" {
			t.Errorf("event %s by %q", e.Action, e.Actor)
		}
	}
	if want := "[apps:destroy apps:rename access:remove access:add apps:create]"; fmt.Sprint(actions) != want {
		t.Fatalf("events %v, want %s", actions, want)
	}
}

func TestFailedChangeRecordsNoEvent(t *testing.T) {
	db, _ := open(t)
	u := addUser(t, db, "alice", true)
	ctx := as(u)
	db.CreateApp(ctx, &skiff.App{Name: "one"})
	before, _ := db.ListEvents(ctx, skiff.EventFilter{})
	db.CreateApp(ctx, &skiff.App{Name: "one"}) // conflict
	after, _ := db.ListEvents(ctx, skiff.EventFilter{})
	if len(after) != len(before) {
		t.Fatalf("a refused change wrote an event: %d -> %d", len(before), len(after))
	}
}

func TestKeys(t *testing.T) {
	db, _ := open(t)
	ctx := context.Background()
	addUser(t, db, "root", true)
	if _, err := db.AddKey(ctx, "other", false, &skiff.Key{Fingerprint: "SHA256:root", Type: "ssh-ed25519", PublicKey: "x"}); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("same key for two users: %v", err)
	}
	// Several keys at once: all or none.
	events, _ := db.ListEvents(ctx, skiff.EventFilter{Limit: 1000})
	fresh := &skiff.Key{Fingerprint: "SHA256:fresh", Type: "ssh-ed25519", PublicKey: "f"}
	for _, keys := range [][]*skiff.Key{
		{fresh, {Fingerprint: "SHA256:root", Type: "ssh-ed25519", PublicKey: "x"}},
		{fresh, {Fingerprint: "SHA256:fresh", Type: "ssh-ed25519", PublicKey: "f"}},
	} {
		if _, err := db.AddKey(ctx, "newcomer", false, keys...); skiff.ErrorCode(err) != skiff.ECONFLICT {
			t.Fatalf("a registered or repeated key among several: %v", err)
		}
		if _, err := db.FindUserByFingerprint(ctx, "SHA256:fresh"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
			t.Fatalf("the first key was kept although the second failed: %v", err)
		}
		if _, err := db.FindUserByName(ctx, "newcomer"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
			t.Fatalf("the user was created although no key was added: %v", err)
		}
	}
	if after, _ := db.ListEvents(ctx, skiff.EventFilter{Limit: 1000}); len(after) != len(events) {
		t.Fatalf("a refused keys:add wrote events: %d -> %d", len(events), len(after))
	}
	if _, err := db.AddKey(ctx, "Bad Name", false, &skiff.Key{Fingerprint: "SHA256:z", Type: "t", PublicKey: "x"}); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Fatalf("bad user name: %v", err)
	}
	if _, err := db.RemoveKey(ctx, "root", ""); skiff.ErrorCode(err) != skiff.ECONFLICT {
		t.Fatalf("removed the last admin: %v", err)
	}
	addUser(t, db, "second", true)
	if n, err := db.RemoveKey(ctx, "root", "SHA256:root"); err != nil || n != 1 {
		t.Fatalf("remove: %d %v", n, err)
	}
	if _, err := db.FindUserByName(ctx, "root"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("user without keys still exists: %v", err)
	}
	if _, err := db.FindUserByFingerprint(ctx, "SHA256:root"); skiff.ErrorCode(err) != skiff.ENOTFOUND {
		t.Fatalf("removed key still authenticates: %v", err)
	}
	// Adding a key with admin=false never demotes.
	if _, err := db.AddKey(ctx, "second", false, &skiff.Key{Fingerprint: "SHA256:second2", Type: "t", PublicKey: "y"}); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.FindUserByName(ctx, "second"); !u.Admin {
		t.Fatal("admin demoted by keys:add")
	}
}

// Writers begin IMMEDIATE on one connection: concurrent changes queue
// instead of failing with SQLITE_BUSY, and none is lost.
func TestConcurrentWriters(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "root", true))
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.CreateApp(ctx, &skiff.App{Name: fmt.Sprintf("app-%d", i)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	apps, _ := db.ListApps(ctx, skiff.AppFilter{})
	if len(apps) != 200 {
		t.Fatalf("%d apps, want 200", len(apps))
	}
	if s, err := db.IntegrityCheck(ctx); err != nil || s != "ok" {
		t.Fatalf("integrity: %s %v", s, err)
	}
}

func TestPushes(t *testing.T) {
	db, _ := open(t)
	u := addUser(t, db, "alice", false)
	ctx := as(u)
	app := &skiff.App{Name: "web"}
	db.CreateApp(ctx, app)
	p := &skiff.Push{AppID: app.ID, Ref: "refs/heads/main", OldCommit: "0000000", Commit: "abcdef1234"}
	if err := db.RecordPush(ctx, p); err != nil {
		t.Fatal(err)
	}
	pushes, err := db.ListPushes(ctx, app.ID, 0)
	if err != nil || len(pushes) != 1 || pushes[0].Pusher != "alice" || pushes[0].Commit != "abcdef1234" {
		t.Fatalf("pushes %+v %v", pushes, err)
	}
}

// A backup taken while writes go on is a complete database of its own.
func TestBackup(t *testing.T) {
	db, _ := open(t)
	ctx := as(addUser(t, db, "root", true))
	for i := range 20 {
		db.CreateApp(ctx, &skiff.App{Name: fmt.Sprintf("app-%d", i)})
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	restored, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	apps, _ := restored.ListApps(context.Background(), skiff.AppFilter{})
	if len(apps) != 20 {
		t.Fatalf("the backup has %d apps, want 20", len(apps))
	}
	if s, err := restored.IntegrityCheck(context.Background()); err != nil || s != "ok" {
		t.Fatalf("integrity: %s %v", s, err)
	}
}
