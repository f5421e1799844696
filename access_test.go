package skiff_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/store"
)

// The access rule over a real store: who may use an app, and that a
// refused user cannot tell an existing app from a missing one.
func TestAuthorizeApp(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	user := func(name string, admin bool) *skiff.Actor {
		u, err := db.AddKey(ctx, name, admin, &skiff.Key{Fingerprint: "SHA256:" + name, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 AAAA" + name})
		if err != nil {
			t.Fatal(err)
		}
		return &skiff.Actor{Name: name, User: u, Fingerprint: "SHA256:" + name}
	}
	admin, alice, bob, carol := user("root", true), user("alice", false), user("bob", false), user("carol", false)
	if err := db.CreateApp(skiff.WithActor(ctx, alice), &skiff.App{Name: "shop"}); err != nil {
		t.Fatal(err)
	}
	app, _ := db.FindAppByName(ctx, "shop")
	if err := db.GrantAccess(skiff.WithActor(ctx, alice), app.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	local := &skiff.Actor{Name: "local:root"}
	for _, tc := range []struct {
		who       *skiff.Actor
		name      string
		ownerOnly bool
		code      string // "" for allowed
	}{
		{alice, "shop", true, ""}, {bob, "shop", false, ""}, {bob, "shop", true, skiff.EUNAUTHORIZED},
		{carol, "shop", false, skiff.EUNAUTHORIZED}, {carol, "nothing-here", false, skiff.EUNAUTHORIZED},
		{admin, "shop", true, ""}, {local, "shop", true, ""},
		{admin, "nothing-here", false, skiff.ENOTFOUND}, {local, "nothing-here", false, skiff.ENOTFOUND},
		{carol, "Bad_Name", false, skiff.EINVALID}, {nil, "shop", false, skiff.EUNAUTHORIZED},
	} {
		got, err := skiff.AuthorizeApp(ctx, db, db, tc.who, tc.name, tc.ownerOnly)
		who := "nil"
		if tc.who != nil {
			who = tc.who.Name
		}
		if skiff.ErrorCode(err) != tc.code {
			t.Errorf("%s on %s (owner only %v): %v, want code %q", who, tc.name, tc.ownerOnly, err, tc.code)
			continue
		}
		if tc.code == "" && (got == nil || got.ID != app.ID) {
			t.Errorf("%s on %s: got %+v", who, tc.name, got)
		}
		// No existence oracle: the same error value, not just the same code.
		if tc.code == skiff.EUNAUTHORIZED && err != skiff.ErrNotAuthorized {
			t.Errorf("%s on %s: %v is not ErrNotAuthorized", who, tc.name, err)
		}
	}
	// Access taken away applies at once.
	if err := db.RevokeAccess(skiff.WithActor(ctx, alice), app.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := skiff.AuthorizeApp(ctx, db, db, bob, "shop", false); err != skiff.ErrNotAuthorized {
		t.Fatalf("after access:remove: %v", err)
	}
}
