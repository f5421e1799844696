package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/store"
)

// slowPurge is a builder whose cache takes longer to remove than the
// interval at which sessions check their access.
type slowPurge struct{ skiff.Builder }

func (b slowPurge) PurgeCache(ctx context.Context, appID string) error {
	time.Sleep(skiff.RevokeCheckInterval * 5 / 2)
	return b.Builder.PurgeCache(ctx, appID)
}

// An owner's apps:destroy ends the owner's access to the app, as it must:
// its own session is not ended for that (it printed "done", then "your
// access to this app was removed" and exit 1 when the destroy took longer
// than an access check's interval).
func TestDestroyIsNotRevokedByItself(t *testing.T) {
	s := newServer(t, func(db *store.DB, dcfg *deploy.Config, svc *admin.Services) {
		dcfg.Builder = slowPurge{dcfg.Builder}
	})
	s.must("alice", "apps:create", "shop")
	r := s.run("alice", "", "apps:destroy", "shop", "--force")
	if r.code != 0 || strings.Contains(r.stderr, "removed") || !strings.Contains(r.stderr, "done") {
		t.Fatalf("apps:destroy by its owner: exit %d\n%s", r.code, r)
	}
	if r := s.run("alice", "", "apps:info", "shop"); r.code == 0 {
		t.Fatalf("the app is still there:\n%s", r)
	}
}
