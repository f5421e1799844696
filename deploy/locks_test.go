package deploy

import (
	"context"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestAppLocks(t *testing.T) {
	l := appLocks{held: map[string]*lockHolder{}}
	ctx := skiff.WithActor(context.Background(), &skiff.Actor{Name: "alice"})
	a := &skiff.App{ID: "a", Name: "web"}
	unlock, err := l.lock(ctx, a, "push")
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.lock(ctx, a, "push")
	if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || err.Error()[:24] != "web is busy: a push by a" {
		t.Fatalf("second lock: %v", err)
	}
	if u2, err := l.lock(ctx, &skiff.App{ID: "b", Name: "other"}, "push"); err != nil {
		t.Fatal("another app is blocked:", err)
	} else {
		u2()
	}
	unlock()
	if u3, err := l.lock(ctx, a, "rename"); err != nil {
		t.Fatal("lock not released:", err)
	} else {
		u3()
	}
}
