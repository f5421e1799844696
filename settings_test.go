package skiff

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSettingsRoundTrip(t *testing.T) {
	s := &Settings{
		Check:        HealthCheck{Path: "/up", Timeout: 2500 * time.Millisecond, Deadline: 90 * time.Second},
		AppJSONCheck: &HealthCheck{Path: "/health", Interval: 3 * time.Second},
		WaitToRetire: 10 * time.Second, Maintenance: true, MaintenancePage: "<h1>back soon</h1>",
		ACME: true, HSTS: true, MaxBodyBytes: 50 << 20, ResponseTimeout: time.Minute,
		Builder: "heroku/builder:24", Buildpacks: []string{"skiff/nodejs", "skiff/procfile"}, Stopped: []string{"worker"},
	}
	v := s.Values()
	if v["checks.timeout"] != "2.5" || v["proxy.max-body"] != "52428800" || v["maintenance"] != "on" || v["buildpacks"] != `["skiff/nodejs","skiff/procfile"]` {
		t.Fatalf("stored as %v", v)
	}
	got, err := ParseSettings(v)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, s)
	}
	// Defaults are not stored: every key is "".
	for k, v := range (&Settings{}).Values() {
		if v != "" {
			t.Errorf("the default of %s is stored as %q", k, v)
		}
	}
	if got, err := ParseSettings(map[string]string{"some.future.key": "x"}); err != nil || !reflect.DeepEqual(got, &Settings{}) {
		t.Fatalf("an unknown key: %+v %v", got, err)
	}
}

// A stored value that does not parse is an error naming the key and what
// it holds, never a silent zero; the other keys still read, and the bad
// one is at its default.
func TestSettingsBadStoredValues(t *testing.T) {
	for key, bad := range map[string]string{
		"checks.timeout": "soon", "checks.deadline": "-3", "checks.wait-to-retire": "99999", "proxy.max-body": "50m",
		"proxy.timeout": "abc", "maintenance": "yes", "certs.auto": "true", "buildpacks": "skiff/nodejs",
		"ps.stopped": "{", "app.json.check": "[]", "checks.path": "up", "maintenance.page": strings.Repeat("x", MaxMaintenancePage+1),
	} {
		got, err := ParseSettings(map[string]string{key: bad, "certs.hsts": "on"})
		if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), key) || !strings.Contains(ErrorMessage(err), "not ") {
			t.Errorf("%s=%q: %v", key, bad, err)
			continue
		}
		if got == nil || !got.HSTS {
			t.Errorf("%s=%q: the good keys were not read: %+v", key, bad, got)
			continue
		}
		want := &Settings{HSTS: true}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s=%q: read as %+v, want the default for it", key, bad, got)
		}
	}
}

func TestSetCheckAndProxy(t *testing.T) {
	s := &Settings{}
	for _, kv := range [][2]string{{"path", "/up"}, {"timeout", "2.5"}, {"deadline", "60s"}, {"wait-to-retire", "5"}} {
		if err := s.SetCheck(kv[0], kv[1]); err != nil {
			t.Fatalf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
	if s.Check != (HealthCheck{Path: "/up", Timeout: 2500 * time.Millisecond, Deadline: time.Minute}) || s.WaitToRetire != 5*time.Second {
		t.Fatalf("checks %+v", s)
	}
	if err := s.SetCheck("timeout", ""); err != nil || s.Check.Timeout != 0 {
		t.Fatalf("reset: %v %+v", err, s.Check)
	}
	for _, kv := range [][2]string{{"path", "up"}, {"path", "/a b"}, {"timeout", "0"}, {"timeout", "3601"}, {"deadline", "x"}, {"color", "red"}} {
		before := *s
		if err := s.SetCheck(kv[0], kv[1]); ErrorCode(err) != EINVALID {
			t.Errorf("checks %s=%s: %v", kv[0], kv[1], err)
		}
		if !reflect.DeepEqual(*s, before) {
			t.Errorf("checks %s=%s changed the settings", kv[0], kv[1])
		}
	}
	if err := s.SetProxy("max-body-size", "1k"); err != nil || s.MaxBodyBytes != 1024 {
		t.Fatalf("max-body-size: %v %d", err, s.MaxBodyBytes)
	}
	if err := s.SetProxy("response-timeout", "90s"); err != nil || s.ResponseTimeout != 90*time.Second {
		t.Fatalf("response-timeout: %v %v", err, s.ResponseTimeout)
	}
	for _, kv := range [][2]string{{"max-body-size", "lots"}, {"max-body-size", "-1"}, {"response-timeout", "0.5"}, {"response-timeout", "7200"}, {"gzip", "on"}} {
		if err := s.SetProxy(kv[0], kv[1]); ErrorCode(err) != EINVALID {
			t.Errorf("proxy %s %s: %v", kv[0], kv[1], err)
		}
	}
	if err := s.SetProxy("max-body-size", ""); err != nil || s.MaxBodyBytes != 0 {
		t.Fatalf("reset: %v %d", err, s.MaxBodyBytes)
	}
}

func TestSettingsRouteAndChecks(t *testing.T) {
	app := &App{ID: "a1", Name: "shop"}
	s := &Settings{AppJSONCheck: &HealthCheck{Path: "/health"}, Check: HealthCheck{Timeout: time.Second}, WaitToRetire: 3 * time.Second, Maintenance: true}
	if hc := s.HealthCheck(); hc.Path != "/health" {
		t.Fatalf("app.json's check when checks:set set no path: %+v", hc)
	}
	s.Check.Path = "/up"
	r := s.Route(app, []string{"www.example.com"})
	if r.Health.Path != "/up" || r.Health.Timeout != time.Second || r.DrainTimeout != 3*time.Second || !r.Maintenance || r.AppID != "a1" || r.Name != "shop" || r.Domains[0] != "www.example.com" {
		t.Fatalf("route %+v", r)
	}
}

func TestStoppedTypes(t *testing.T) {
	s := &Settings{}
	s.SetStopped("worker", true)
	s.SetStopped("clock", true)
	if !reflect.DeepEqual(s.Stopped, []string{"clock", "worker"}) || !s.IsStopped("worker") || s.IsStopped("web") {
		t.Fatalf("stopped %v", s.Stopped)
	}
	s.SetStopped("worker", false)
	s.SetStopped("", true)
	if !s.IsStopped("web") || !s.IsStopped("clock") {
		t.Fatalf("all stopped: %v", s.Stopped)
	}
	s.SetStopped("", false)
	if len(s.Stopped) != 0 || s.IsStopped("clock") {
		t.Fatalf("all started: %v", s.Stopped)
	}
}
