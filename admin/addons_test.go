package admin_test

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/store"
)

// noServices is a service manager that is never asked to act: listing
// reads the store alone.
type noServices struct{ skiff.ServiceManager }

func (noServices) Versions(kind string) []string { return []string{"15"} }

// With no services, each listing says how to make one, in a command that
// runs as written.
func TestEmptyServiceListsSayHowToCreateOne(t *testing.T) {
	s := newServer(t, func(db *store.DB, dcfg *deploy.Config, svc *admin.Services) {
		svc.Services, svc.ServiceStore = noServices{}, db
	})
	for cmd, want := range map[string]string{
		"addons":        "No add-on services. Create one with addons:create postgres --as <name> (or redis).",
		"postgres:list": "No postgres services. Create one with postgres:create <name>.",
		"redis:list":    "No redis services. Create one with redis:create <name>.",
	} {
		if r := s.run("alice", "", cmd); r.code != 0 || strings.TrimSpace(r.stderr) != want {
			t.Errorf("%s: exit %d, %q, want %q", cmd, r.code, r.stderr, want)
		}
	}
}
