package skiff

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Settings are an app's settings: the health check new web instances
// pass, how long old ones drain, how the router serves the app, how it is
// built, and which process types ps:stop stopped. This one typed value is
// what every reader and writer uses; the store keeps it as key/value
// strings (Values and ParseSettings), and deploy is the one writer.
type Settings struct {
	// Check is set by checks:set; an empty Path means none was set.
	Check HealthCheck
	// AppJSONCheck is the startup check of web from the last push's
	// app.json; nil when it has none. A Check path wins over it.
	AppJSONCheck *HealthCheck
	// WaitToRetire is how long old instances drain after a switch; 0:
	// DefaultWaitToRetire.
	WaitToRetire time.Duration
	// ReleaseTimeout bounds the release phase (checks:set
	// release-timeout=); 0: DefaultReleaseTimeout.
	ReleaseTimeout time.Duration

	Maintenance     bool
	MaintenancePage string        // HTML; empty: the router's default page
	ACME            bool          // certs:auto
	HSTS            bool          // certs:hsts
	MaxBodyBytes    int64         // 0: the router's default
	ResponseTimeout time.Duration // 0: DefaultResponseTimeout

	Builder    string   // builder image reference; "" for the default builder
	Buildpacks []string // buildpacks:set, in order; empty: detection
	// Stopped lists the process types ps:stop stopped, sorted; "*" means
	// all of them.
	Stopped []string
	// Cluster is the cluster the app runs on (scheduler:set APP k8s
	// --cluster NAME); "" for this server.
	Cluster string
}

// Defaults of the settings, for the router, the reports and the docs.
const (
	DefaultCheckTimeout    = 5 * time.Second
	DefaultCheckInterval   = time.Second
	DefaultCheckDeadline   = 60 * time.Second
	DefaultWaitToRetire    = 30 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	DefaultReleaseTimeout  = 30 * time.Minute
)

// Limits of the settings users give.
const (
	MaxSettingSeconds   = 3600
	MaxReleaseSeconds   = 86400 // a release command may take up to a day
	MaxMaintenancePage  = 256 << 10
	maxCheckPath        = 512
	maxSettingListItems = 100
)

// SettingsService stores apps' settings.
type SettingsService interface {
	// Settings returns the app's settings; a stored value that does not
	// parse is an error that names its key.
	Settings(ctx context.Context, appID string) (*Settings, error)
	// SetSettings stores s, writing the keys that differ from what is
	// stored, and records an audit event for action (the command).
	SetSettings(ctx context.Context, appID, action string, s *Settings) error
}

// setting is how one field is kept in the store.
type setting struct {
	key    string
	format func(*Settings) string        // "" for the default: the key is not stored
	parse  func(*Settings, string) error // the stored value, never ""
}

// settingKeys are the store's keys, each with its field. The keys are
// those the store has always used.
var settingKeys = []setting{
	{"checks.path", func(s *Settings) string { return s.Check.Path }, func(s *Settings, v string) (err error) {
		s.Check.Path, err = ParseCheckPath(v)
		return err
	}},
	{"checks.timeout", func(s *Settings) string { return formatSeconds(s.Check.Timeout) }, func(s *Settings, v string) (err error) {
		s.Check.Timeout, err = ParseSeconds("timeout", v)
		return err
	}},
	{"checks.deadline", func(s *Settings) string { return formatSeconds(s.Check.Deadline) }, func(s *Settings, v string) (err error) {
		s.Check.Deadline, err = ParseSeconds("deadline", v)
		return err
	}},
	{"checks.wait-to-retire", func(s *Settings) string { return formatSeconds(s.WaitToRetire) }, func(s *Settings, v string) (err error) {
		s.WaitToRetire, err = ParseSeconds("wait-to-retire", v)
		return err
	}},
	{"checks.release-timeout", func(s *Settings) string { return formatSeconds(s.ReleaseTimeout) }, func(s *Settings, v string) (err error) {
		s.ReleaseTimeout, err = parseReleaseTimeout(v)
		return err
	}},
	{"app.json.check", func(s *Settings) string {
		if s.AppJSONCheck == nil {
			return ""
		}
		b, _ := json.Marshal(s.AppJSONCheck) // a struct of a string and durations always marshals
		return string(b)
	}, func(s *Settings, v string) error {
		var hc HealthCheck
		if err := json.Unmarshal([]byte(v), &hc); err != nil {
			return err
		}
		s.AppJSONCheck = &hc
		return nil
	}},
	{"maintenance", func(s *Settings) string { return onOrEmpty(s.Maintenance) }, func(s *Settings, v string) (err error) {
		s.Maintenance, err = parseOn(v)
		return err
	}},
	{"maintenance.page", func(s *Settings) string { return s.MaintenancePage }, func(s *Settings, v string) error {
		s.MaintenancePage = v
		return nil
	}},
	{"certs.auto", func(s *Settings) string { return onOrEmpty(s.ACME) }, func(s *Settings, v string) (err error) {
		s.ACME, err = parseOn(v)
		return err
	}},
	{"certs.hsts", func(s *Settings) string { return onOrEmpty(s.HSTS) }, func(s *Settings, v string) (err error) {
		s.HSTS, err = parseOn(v)
		return err
	}},
	{"proxy.max-body", func(s *Settings) string {
		if s.MaxBodyBytes == 0 {
			return ""
		}
		return strconv.FormatInt(s.MaxBodyBytes, 10)
	}, func(s *Settings, v string) (err error) {
		s.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64)
		return err
	}},
	{"proxy.timeout", func(s *Settings) string { return formatSeconds(s.ResponseTimeout) }, func(s *Settings, v string) (err error) {
		s.ResponseTimeout, err = ParseSeconds("response-timeout", v)
		return err
	}},
	{"builder", func(s *Settings) string { return s.Builder }, func(s *Settings, v string) error {
		s.Builder = v
		return nil
	}},
	{"buildpacks", func(s *Settings) string { return jsonList(s.Buildpacks) }, func(s *Settings, v string) error {
		return json.Unmarshal([]byte(v), &s.Buildpacks)
	}},
	{"ps.stopped", func(s *Settings) string { return jsonList(s.Stopped) }, func(s *Settings, v string) error {
		return json.Unmarshal([]byte(v), &s.Stopped)
	}},
	{"scheduler.cluster", func(s *Settings) string { return s.Cluster }, func(s *Settings, v string) error {
		s.Cluster = v
		return nil
	}},
}

// what each stored key holds, for the error when it does not parse.
var settingAllowed = map[string]string{
	"checks.path": "a path starting with /", "checks.timeout": "seconds", "checks.deadline": "seconds",
	"checks.wait-to-retire": "seconds", "checks.release-timeout": "seconds", "app.json.check": "a JSON health check", "maintenance": "on",
	"certs.auto": "on", "certs.hsts": "on", "proxy.max-body": "a number of bytes", "proxy.timeout": "seconds",
	"buildpacks": "a JSON list of strings", "ps.stopped": "a JSON list of strings",
	"maintenance.page": "an HTML page of at most 256 KiB", "builder": "an image reference",
	"scheduler.cluster": "a cluster's name",
}

// ParseSettings reads settings as the store keeps them (key → value;
// unknown keys are ignored, so an older skiff reads a newer one's). A
// value that does not parse, or is out of range, is an EINVALID error that
// names the key and what it holds, never a silent zero; the Settings
// returned with it hold the default for that key, so that storing a change
// repairs it.
func ParseSettings(stored map[string]string) (*Settings, error) {
	s := &Settings{}
	var bad []string
	for _, def := range settingKeys {
		v, ok := stored[def.key]
		if !ok || v == "" {
			continue
		}
		try := s.Clone()
		err := def.parse(try, v)
		if err == nil {
			err = try.Validate()
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s is %s, not %s", def.key, quoteForUser(v), settingAllowed[def.key]))
			continue // the key keeps its default
		}
		s = try
	}
	if len(bad) > 0 {
		return s, Errorf(EINVALID, "the stored setting %s; any change of the app's settings resets it to the default", strings.Join(bad, ", "))
	}
	return s, nil
}

// Values returns the settings as the store keeps them: every key, with ""
// for one at its default (which the store removes).
func (s *Settings) Values() map[string]string {
	out := make(map[string]string, len(settingKeys))
	for _, def := range settingKeys {
		out[def.key] = def.format(s)
	}
	return out
}

// Validate checks every field against what users may set, with the
// message they would get for it.
func (s *Settings) Validate() error {
	if s.Check.Path != "" {
		if _, err := ParseCheckPath(s.Check.Path); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", s.Check.Timeout}, {"deadline", s.Check.Deadline}, {"wait-to-retire", s.WaitToRetire}, {"response-timeout", s.ResponseTimeout}} {
		if d.v < 0 || d.v > MaxSettingSeconds*time.Second {
			return Errorf(EINVALID, "%s takes seconds from 1 to %d", d.name, MaxSettingSeconds)
		}
	}
	if s.ReleaseTimeout < 0 || s.ReleaseTimeout > MaxReleaseSeconds*time.Second {
		return Errorf(EINVALID, "release-timeout takes seconds from 1 to %d", MaxReleaseSeconds)
	}
	if s.MaxBodyBytes < 0 || s.MaxBodyBytes > maxSize {
		return Errorf(EINVALID, "max-body-size takes a size like 50m")
	}
	if len(s.MaintenancePage) > MaxMaintenancePage {
		return Errorf(EINVALID, "the page is over %d KiB", MaxMaintenancePage>>10)
	}
	if s.Cluster != "" {
		if err := ValidateClusterName(s.Cluster); err != nil {
			return err
		}
	}
	if len(s.Buildpacks) > maxSettingListItems || len(s.Stopped) > maxSettingListItems {
		return Errorf(EINVALID, "too many buildpacks or stopped process types (the limit is %d)", maxSettingListItems)
	}
	return nil
}

// Clone returns a deep copy, for a change that may be undone.
func (s *Settings) Clone() *Settings {
	c := *s
	if s.AppJSONCheck != nil {
		hc := *s.AppJSONCheck
		c.AppJSONCheck = &hc
	}
	c.Buildpacks = slices.Clone(s.Buildpacks)
	c.Stopped = slices.Clone(s.Stopped)
	return &c
}

// HealthCheck is the check new web instances must pass: checks:set's
// when it set a path, else app.json's startup check of web, else none
// (any HTTP answer), with checks:set's timeout and deadline.
func (s *Settings) HealthCheck() HealthCheck {
	if s.Check.Path == "" && s.AppJSONCheck != nil {
		return *s.AppJSONCheck
	}
	return s.Check
}

// Route is how the router serves app with these settings and its custom
// domains (its backends change only through a deploy).
func (s *Settings) Route(app *App, domains []string) AppRoute {
	return AppRoute{
		AppID: app.ID, Name: app.Name, Domains: domains,
		Health:          s.HealthCheck(),
		Maintenance:     s.Maintenance,
		MaintenancePage: s.MaintenancePage,
		ACME:            s.ACME,
		HSTS:            s.HSTS,
		MaxBodyBytes:    s.MaxBodyBytes,
		ResponseTimeout: s.ResponseTimeout,
		DrainTimeout:    s.WaitToRetire,
	}
}

// IsStopped reports whether ps:stop stopped the process type.
func (s *Settings) IsStopped(processType string) bool {
	return slices.Contains(s.Stopped, "*") || slices.Contains(s.Stopped, processType)
}

// SetStopped records ps:stop (stop) or ps:start of a process type, ""
// for all of them.
func (s *Settings) SetStopped(processType string, stop bool) {
	set := map[string]bool{}
	for _, t := range s.Stopped {
		set[t] = true
	}
	switch {
	case processType == "" && !stop:
		set = map[string]bool{}
	case processType == "":
		set["*"] = true
	case stop:
		set[processType] = true
	default:
		delete(set, processType)
	}
	s.Stopped = slices.Sorted(maps.Keys(set))
}

// ParseSeconds reads a number of seconds as users give it to checks:set
// and proxy:set ("30", "2.5", "60s"): above 0 and at most an hour.
func ParseSeconds(name, v string) (time.Duration, error) {
	n, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
	if err != nil || n <= 0 || n > MaxSettingSeconds {
		return 0, Errorf(EINVALID, "%s takes seconds from 1 to %d", name, MaxSettingSeconds)
	}
	return time.Duration(n * float64(time.Second)), nil
}

// ParseCheckPath reads a health check's path: it starts with / and has no
// spaces or line breaks.
func ParseCheckPath(v string) (string, error) {
	if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \r\n\x00") || len(v) > maxCheckPath {
		return "", Errorf(EINVALID, "the check path must start with / (like /up)")
	}
	return v, nil
}

// maxSize caps sizes users give (a petabyte: far beyond any real limit).
const maxSize = 1 << 50

// ParseSize reads a size in bytes as users give it ("512m", "2g",
// "64k", "1048576").
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.ToLower(s)
	switch {
	case strings.HasSuffix(num, "g"):
		mult, num = 1<<30, num[:len(num)-1]
	case strings.HasSuffix(num, "m"):
		mult, num = 1<<20, num[:len(num)-1]
	case strings.HasSuffix(num, "k"):
		mult, num = 1<<10, num[:len(num)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > maxSize/mult {
		return 0, Errorf(EINVALID, "invalid size %s: use a number with k, m or g, like 512m", quoteForUser(s))
	}
	return n * mult, nil
}

// FormatSize writes a byte count the way a person reads it: "8 GiB",
// "1.5 GiB", "512 MiB".
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// formatSeconds is a duration as the store keeps it: seconds, "" for 0.
func formatSeconds(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// FormatSeconds is a duration as users gave it ("30", "2.5"), "" for 0.
func FormatSeconds(d time.Duration) string { return formatSeconds(d) }

func onOrEmpty(b bool) string {
	if b {
		return "on"
	}
	return ""
}

func parseOn(v string) (bool, error) {
	if v != "on" {
		return false, fmt.Errorf("%q is not on", v)
	}
	return true, nil
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	b, _ := json.Marshal(l) // a list of strings always marshals
	return string(b)
}

// CheckSettings and ProxySettings are the names checks:set and proxy:set
// take, in the order their help lists them.
var (
	CheckSettings = []string{"path", "timeout", "deadline", "wait-to-retire", "release-timeout"}
	ProxySettings = []string{"max-body-size", "response-timeout"}
)

// SetCheck sets one of checks:set's settings from what the user typed;
// an empty value restores the default.
func (s *Settings) SetCheck(name, value string) (err error) {
	var d time.Duration
	if value != "" && name == "release-timeout" {
		if d, err = parseReleaseTimeout(value); err != nil {
			return err
		}
	} else if value != "" && name != "path" {
		if d, err = ParseSeconds(name, value); err != nil {
			return err
		}
	}
	switch name {
	case "path":
		if value != "" {
			if value, err = ParseCheckPath(value); err != nil {
				return err
			}
		}
		s.Check.Path = value
	case "timeout":
		s.Check.Timeout = d
	case "deadline":
		s.Check.Deadline = d
	case "wait-to-retire":
		s.WaitToRetire = d
	case "release-timeout":
		s.ReleaseTimeout = d
	default:
		return Errorf(EINVALID, "%s is not one of path, timeout, deadline, wait-to-retire, release-timeout", quoteForUser(name))
	}
	return nil
}

// SetProxy sets one of proxy:set's settings from what the user typed;
// an empty value restores the default.
func (s *Settings) SetProxy(name, value string) error {
	switch name {
	case "max-body-size":
		var n int64
		if value != "" {
			var err error
			if n, err = ParseSize(value); err != nil {
				return err
			}
		}
		s.MaxBodyBytes = n
	case "response-timeout":
		var d time.Duration
		if value != "" {
			var err error
			// At least a second: below that, slow but healthy apps time out.
			if d, err = ParseSeconds(name, value); err != nil || d < time.Second {
				return Errorf(EINVALID, "response-timeout takes seconds from 1 to %d", MaxSettingSeconds)
			}
		}
		s.ResponseTimeout = d
	default:
		return Errorf(EINVALID, "unknown proxy setting %s; the settings are max-body-size and response-timeout", quoteForUser(name))
	}
	return nil
}

// parseReleaseTimeout reads release-timeout's seconds: up to a day.
func parseReleaseTimeout(v string) (time.Duration, error) {
	n, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
	if err != nil || n <= 0 || n > MaxReleaseSeconds {
		return 0, Errorf(EINVALID, "release-timeout takes seconds from 1 to %d", MaxReleaseSeconds)
	}
	return time.Duration(n * float64(time.Second)), nil
}

// ReleasePhaseTimeout is how long the release phase may take.
func (s *Settings) ReleasePhaseTimeout() time.Duration {
	if s.ReleaseTimeout > 0 {
		return s.ReleaseTimeout
	}
	return DefaultReleaseTimeout
}
