package skiff_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/store"
)

// A session's context ends soon after its key or its access to the app goes
// away, with the reason; an admin's and the local CLI's never do on access.
func TestRevocable(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func(name string) *skiff.Key {
		return &skiff.Key{Fingerprint: "SHA256:" + name, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAA" + name}
	}
	root, _ := db.AddKey(ctx, "root", true, key("root"))
	bob, _ := db.AddKey(ctx, "bob", false, key("bob"))
	app := &skiff.App{Name: "web"}
	if err := db.CreateApp(skiff.WithActor(ctx, &skiff.Actor{Name: "root", User: root}), app); err != nil {
		t.Fatal(err)
	}
	if err := db.GrantAccess(ctx, app.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	actor := func(u *skiff.User) *skiff.Actor {
		return &skiff.Actor{Name: u.Name, User: u, Fingerprint: "SHA256:" + u.Name}
	}
	const every = 10 * time.Millisecond
	ended := func(c context.Context, want string) {
		t.Helper()
		select {
		case <-c.Done():
		case <-time.After(2 * time.Second):
			t.Fatalf("not ended (want %q)", want)
		}
		if err := skiff.Revoked(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("ended with %v, want %q", err, want)
		}
	}
	open := func(c context.Context) {
		t.Helper()
		select {
		case <-c.Done():
			t.Fatalf("ended: %v", context.Cause(c))
		case <-time.After(5 * every):
		}
	}

	bobApp, stop1 := skiff.Revocable(ctx, db, db, actor(bob), app.ID, every)
	defer stop1()
	bobAny, stop2 := skiff.Revocable(ctx, db, db, actor(bob), "", every)
	defer stop2()
	rootApp, stop3 := skiff.Revocable(ctx, db, db, actor(root), app.ID, every)
	defer stop3()
	local, stop4 := skiff.Revocable(ctx, db, db, &skiff.Actor{Name: "local:root"}, app.ID, every)
	defer stop4()
	open(bobApp)

	if err := db.RevokeAccess(ctx, app.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	ended(bobApp, "access to this app was removed")
	open(bobAny) // the key still stands
	open(rootApp)

	// The key removed, or given to someone else: every session of it ends.
	if _, err := db.RemoveKey(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	ended(bobAny, "key of this session was removed")
	db.AddKey(ctx, "bob", false, key("bob"))
	again, _ := db.FindUserByName(ctx, "bob")
	c, stop5 := skiff.Revocable(ctx, db, db, actor(again), "", every)
	defer stop5()
	db.RemoveKey(ctx, "bob", "")
	db.AddKey(ctx, "mallory", false, key("bob"))
	ended(c, "key of this session was removed")
	open(local)
	open(rootApp)
	// Stopping is not a revocation.
	stop3()
	if skiff.Revoked(rootApp) != nil {
		t.Error("a stopped session reads as revoked")
	}
}
