package skiff

import (
	"encoding/json"
	"strings"
	"time"
)

// MaxAppJSON caps the app.json a push may carry.
const MaxAppJSON = 64 << 10

// AppJSON is the part of an app's app.json (Heroku's and Dokku's
// manifest) that skiff reads: the health checks of its process types.
type AppJSON struct {
	Healthchecks map[string][]AppJSONCheck `json:"healthchecks"`
}

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
				per := max(hc.Timeout, 5*time.Second) + max(hc.Interval, time.Second)
				hc.Deadline = time.Duration(c.Attempts) * per
			}
			return hc, true
		}
	}
	return HealthCheck{}, false
}

func secondsOf(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
