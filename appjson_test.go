package skiff_test

import (
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

func TestParseAppJSON(t *testing.T) {
	a, err := skiff.ParseAppJSON([]byte(`{"name": "x", "scripts": {}, "healthchecks": {"web": [
		{"type": "liveness", "path": "/live"},
		{"type": "startup", "name": "ready", "path": "/health/ready", "attempts": 3, "timeout": 5, "wait": 2}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	hc, ok := a.WebCheck()
	if !ok || hc.Path != "/health/ready" || hc.Timeout != 5*time.Second || hc.Interval != 2*time.Second || hc.Deadline != 21*time.Second {
		t.Fatalf("web check %+v %v", hc, ok)
	}
	if a, _ := skiff.ParseAppJSON([]byte(`{"healthchecks": {"worker": [{"path": "/x"}]}}`)); a != nil {
		if _, ok := a.WebCheck(); ok {
			t.Error("a worker check became the web check")
		}
	}
	for _, bad := range []string{`{`, `{"healthchecks": {"web": [{"path": "health"}]}}`, `{"healthchecks": {"web": [{"path": "/a b"}]}}`,
		`{"healthchecks": {"web": [{"path": "/x", "timeout": -1}]}}`, `{"healthchecks": []}`} {
		if _, err := skiff.ParseAppJSON([]byte(bad)); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func FuzzParseAppJSON(f *testing.F) {
	f.Add([]byte(`{"healthchecks": {"web": [{"type": "startup", "path": "/up", "attempts": 2, "timeout": 1}]}}`))
	f.Add([]byte(`{"healthchecks": {"web": [{"path": "nope"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := skiff.ParseAppJSON(data)
		if err != nil {
			return
		}
		if hc, ok := a.WebCheck(); ok && (hc.Path == "" || hc.Path[0] != '/' || hc.Timeout < 0 || hc.Deadline < 0) {
			t.Fatalf("accepted check %+v", hc)
		}
	})
}

func TestParseAppJSONScriptsAndCron(t *testing.T) {
	a, err := skiff.ParseAppJSON([]byte(`{
		"scripts": {"dokku": {"predeploy": " ./migrate.sh ", "postdeploy": "curl -fsS https://example.com/hook"},
		            "postdeploy": {"command": "./seed.sh", "size": "basic"}},
		"cron": [{"command": "node clean.js", "schedule": "*/5  * * * *"}, {"command": "node report.js", "schedule": "@daily"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := a.DeployScripts(); s.Predeploy != "./migrate.sh" || s.Postdeploy != "curl -fsS https://example.com/hook" || s.FirstDeploy != "./seed.sh" {
		t.Errorf("scripts %+v", s)
	}
	jobs, err := a.CronJobs()
	if err != nil || len(jobs) != 2 || jobs[0].Schedule != "*/5 * * * *" || jobs[0].Command != "node clean.js" || jobs[1].Schedule != "@daily" {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	if !skiff.ValidCronID(jobs[0].ID) || jobs[0].ID == jobs[1].ID {
		t.Errorf("ids %q %q", jobs[0].ID, jobs[1].ID)
	}
	// The id depends only on the schedule and the command: it survives deploys.
	if again := skiff.NewCronJob("*/5 * * * *", "node clean.js"); again.ID != jobs[0].ID {
		t.Errorf("id changed: %s, %s", again.ID, jobs[0].ID)
	}
	for _, bad := range []string{
		`{"scripts": {"dokku": {"predeploy": 5}}}`,
		`{"scripts": {"dokku": {"predeploy": "echo \u001b[2J"}}}`,
		`{"cron": [{"command": "", "schedule": "* * * * *"}]}`,
		`{"cron": [{"command": "x", "schedule": "* * *"}]}`,
		`{"cron": [{"command": "x", "schedule": "61 * * * *"}]}`,
		`{"cron": [{"command": "x", "schedule": "* * * * *"}, {"command": "x", "schedule": "*  * * * *"}]}`,
		`{"cron": {"command": "x"}}`,
	} {
		if _, err := skiff.ParseAppJSON([]byte(bad)); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%s: %v", bad, err)
		}
	}
	_, err = skiff.ParseAppJSON([]byte(`{"cron": [{"command": "x", "schedule": "* * * * *"}, {"command": "y", "schedule": "0 0 31 2 *"}]}`))
	if msg := skiff.ErrorMessage(err); !strings.Contains(msg, "cron[1]") {
		t.Errorf("the error does not name the entry: %s", msg)
	}
}

func TestReleasePhase(t *testing.T) {
	rel := &skiff.Release{ProcessTypes: map[string]string{"web": "node server.js", "release": "node migrate.js"},
		Scripts: skiff.DeployScripts{Predeploy: "./pre.sh"}}
	tasks := rel.ReleasePhase()
	if len(tasks) != 2 || tasks[0].Name != "predeploy" || tasks[0].Command != "./pre.sh" || tasks[1].Name != "release" || tasks[1].ProcessType != "release" {
		t.Fatalf("tasks %+v: want predeploy, then release (Dokku's order)", tasks)
	}
	if types := rel.ScalableTypes(); len(types) != 1 || types[0] != "web" {
		t.Errorf("scalable types %v", types)
	}
	if tasks := (&skiff.Release{ProcessTypes: map[string]string{"web": "x"}}).ReleasePhase(); len(tasks) != 0 {
		t.Errorf("a release without a release command has tasks %+v", tasks)
	}
}
