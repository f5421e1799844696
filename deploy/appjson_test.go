package deploy_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestHostileCronEntriesFailThePush: an app.json whose cron entries would
// never fire, fire more often than every minute, flood the server with
// jobs, or carry terminal escapes fails the push before anything is
// built, naming the entry; the release that serves keeps serving, with
// its own jobs.
func TestHostileCronEntriesFailThePush(t *testing.T) {
	m := newMachine(t)
	d := m.start(nil)
	a := d.createApp("shop")
	a.mustPush(map[string]string{"Procfile": "web: serve\n", "app.json": `{"cron": [{"command": "exit 0", "schedule": "@hourly"}]}`})
	builds := buildsOf(d)
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf(`{"command": "exit %d", "schedule": "* * * * *"}`, i)
	}
	for appJSON, want := range map[string]string{
		`{"cron": [{"command": "exit 0", "schedule": "0 0 30 2 *"}]}`:                                           "cron[0]",
		`{"cron": [{"command": "exit 0", "schedule": "* * * * *"}, {"command": "x", "schedule": "@every 1s"}]}`: "cron[1]",
		`{"cron": [{"command": "exit 0", "schedule": "*/0 * * * *"}]}`:                                          "cron[0]",
		`{"cron": [{"command": "exit 0", "schedule": "* * * * * *"}]}`:                                          "cron[0]",
		`{"cron": [{"command": "exit 0", "schedule": "` + strings.Repeat("1,", 5000) + `1 * * * *"}]}`:          "cron[0]",
		`{"cron": [{"command": "echo \u001b]0;pwned\u0007", "schedule": "* * * * *"}]}`:                         "cron[0]",
		`{"cron": [` + strings.Join(many, ",") + `]}`:                                                           "the limit is 100",
		`{"cron": "* * * * * rm -rf /"}`:                                                                        "app.json",
	} {
		out, err := a.push(map[string]string{"app.json": appJSON})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80s: %v\n%s", appJSON, err, out)
		}
	}
	if got := buildsOf(d); got != builds {
		t.Errorf("builds ran for refused pushes: %s, were %s", got, builds)
	}
	a.serving("v1")
	cur, err := d.db.CurrentRelease(adminCtx(), a.app.ID)
	if err != nil || len(cur.Cron) != 1 || cur.Cron[0].Schedule != "@hourly" {
		t.Fatalf("the current release's jobs: %+v %v", cur, err)
	}
}
