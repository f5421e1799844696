package skiff

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// MaxAppJSON caps the app.json a push may carry.
const MaxAppJSON = 64 << 10

// AppJSON is the part of an app's app.json (Heroku's and Dokku's
// manifest) that skiff reads: the health checks of its process types, the
// deploy scripts and the cron jobs. Other keys are ignored.
type AppJSON struct {
	Healthchecks map[string][]AppJSONCheck `json:"healthchecks"`
	Scripts      AppJSONScripts            `json:"scripts"`
	Cron         []AppJSONCron             `json:"cron"`
}

// AppJSONScripts are app.json's "scripts": Dokku's predeploy and postdeploy
// (scripts.dokku.*), and Heroku's postdeploy, which runs once, after the
// app's first deploy.
type AppJSONScripts struct {
	Dokku struct {
		Predeploy  AppJSONScript `json:"predeploy"`
		Postdeploy AppJSONScript `json:"postdeploy"`
	} `json:"dokku"`
	Postdeploy AppJSONScript `json:"postdeploy"`
}

// AppJSONScript is a shell command; app.json writes it as a string, or
// (Heroku's longer form) as an object with a "command".
type AppJSONScript string

// UnmarshalJSON implements json.Unmarshaler.
func (s *AppJSONScript) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = AppJSONScript(str)
		return nil
	}
	var obj struct {
		Command string `json:"command"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return errors.New("a script is a string, or an object with a \"command\"")
	}
	*s = AppJSONScript(obj.Command)
	return nil
}

// AppJSONCron is one entry of app.json's "cron" (Dokku's format).
type AppJSONCron struct {
	Command  string `json:"command"`
	Schedule string `json:"schedule"`
}

// MaxCronJobs caps the cron entries of one app.json.
const MaxCronJobs = 100

// AppJSONCheck is one health check, in Dokku's app.json shape.
type AppJSONCheck struct {
	Type     string  `json:"type"` // "startup" (the one skiff runs), "liveness", "readiness"
	Name     string  `json:"name"`
	Path     string  `json:"path"`
	Attempts int     `json:"attempts"`
	Timeout  float64 `json:"timeout"` // seconds per attempt
	Wait     float64 `json:"wait"`    // seconds between attempts
}

// ParseAppJSON reads an app.json; a malformed one is an EINVALID error that
// says what is wrong, since the deploy would otherwise ignore what the
// user meant.
func ParseAppJSON(data []byte) (*AppJSON, error) {
	if len(data) > MaxAppJSON {
		return nil, Errorf(EINVALID, "app.json is larger than %d KiB", MaxAppJSON>>10)
	}
	var a AppJSON
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, Errorf(EINVALID, "app.json is not valid JSON: %v", err)
	}
	for name, script := range map[string]AppJSONScript{"scripts.dokku.predeploy": a.Scripts.Dokku.Predeploy,
		"scripts.dokku.postdeploy": a.Scripts.Dokku.Postdeploy, "scripts.postdeploy": a.Scripts.Postdeploy} {
		if err := ValidateCommand(string(script)); err != nil && script != "" {
			return nil, Errorf(EINVALID, "app.json: %s: %s", name, ErrorMessage(err))
		}
	}
	if _, err := a.CronJobs(); err != nil {
		return nil, err
	}
	for proc, checks := range a.Healthchecks {
		for i, c := range checks {
			if c.Path != "" && (!strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \r\n\x00") || len(c.Path) > 512) {
				return nil, Errorf(EINVALID, "app.json: healthchecks.%s[%d].path must start with / (like /health)", quoteForUser(proc), i)
			}
			if c.Timeout < 0 || c.Timeout > 3600 || c.Wait < 0 || c.Wait > 3600 || c.Attempts < 0 || c.Attempts > 1000 {
				return nil, Errorf(EINVALID, "app.json: healthchecks.%s[%d] has an out-of-range timeout, wait or attempts", quoteForUser(proc), i)
			}
		}
	}
	return &a, nil
}

// WebCheck returns the health check new web instances must pass: the first
// startup (or untyped) check of the web process with a path, as a
// HealthCheck; ok is false when app.json has none.
func (a *AppJSON) WebCheck() (HealthCheck, bool) {
	for _, c := range a.Healthchecks["web"] {
		if (c.Type == "" || c.Type == "startup") && c.Path != "" {
			hc := HealthCheck{Path: c.Path, Timeout: secondsOf(c.Timeout), Interval: secondsOf(c.Wait)}
			if c.Attempts > 0 {
				per := max(hc.Timeout, DefaultCheckTimeout) + max(hc.Interval, DefaultCheckInterval)
				hc.Deadline = time.Duration(c.Attempts) * per
			}
			return hc, true
		}
	}
	return HealthCheck{}, false
}

// DeployScripts returns the deploy scripts, with surrounding space trimmed.
func (a *AppJSON) DeployScripts() DeployScripts {
	return DeployScripts{
		Predeploy:   strings.TrimSpace(string(a.Scripts.Dokku.Predeploy)),
		Postdeploy:  strings.TrimSpace(string(a.Scripts.Dokku.Postdeploy)),
		FirstDeploy: strings.TrimSpace(string(a.Scripts.Postdeploy)),
	}
}

// CronJobs returns the cron entries as jobs, each with its ID. An entry
// without a command, with a bad schedule, or a duplicate is an EINVALID
// error naming the entry.
func (a *AppJSON) CronJobs() ([]CronJob, error) {
	if len(a.Cron) > MaxCronJobs {
		return nil, Errorf(EINVALID, "app.json: cron has %d entries; the limit is %d", len(a.Cron), MaxCronJobs)
	}
	var jobs []CronJob
	seen := map[string]int{}
	for i, c := range a.Cron {
		if strings.TrimSpace(c.Command) == "" {
			return nil, Errorf(EINVALID, "app.json: cron[%d] has no command", i)
		}
		if err := ValidateCommand(c.Command); err != nil {
			return nil, Errorf(EINVALID, "app.json: cron[%d]: %s", i, ErrorMessage(err))
		}
		s, err := ParseSchedule(c.Schedule)
		if err != nil {
			return nil, Errorf(EINVALID, "app.json: cron[%d]: %s", i, ErrorMessage(err))
		}
		job := NewCronJob(s.String(), strings.TrimSpace(c.Command))
		if first, dup := seen[job.ID]; dup {
			return nil, Errorf(EINVALID, "app.json: cron[%d] repeats cron[%d] (the same schedule and command)", i, first)
		}
		seen[job.ID] = i
		jobs = append(jobs, job)
	}
	return jobs, nil
}

func secondsOf(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
