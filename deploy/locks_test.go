package deploy

import (
	"context"
	"testing"
	"time"

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

// A user's operation waits for the daemon's own work on the app, not the
// other way round.
func TestAppLocksBackground(t *testing.T) {
	l := appLocks{held: map[string]*lockHolder{}}
	ctx := skiff.WithActor(context.Background(), &skiff.Actor{Name: "alice"})
	a := &skiff.App{ID: "a", Name: "web"}
	unlockBg, err := l.lockBackground(ctx, a, "health sync")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		unlock, err := l.lock(ctx, a, "push")
		if err == nil {
			unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("the push did not wait for the background work: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	unlockBg()
	if err := <-got; err != nil {
		t.Fatalf("the push failed after the background work: %v", err)
	}
	unlockUser, _ := l.lock(ctx, a, "push")
	if _, err := l.lockBackground(ctx, a, "health sync"); skiff.ErrorCode(err) != skiff.EUNAVAILABLE {
		t.Fatalf("background work did not step aside: %v", err)
	}
	unlockUser()
}
