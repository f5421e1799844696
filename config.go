package skiff

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Limits on config vars: they travel in every instance's environment.
const (
	MaxConfigKey      = 128
	MaxConfigValue    = 32 << 10
	MaxConfigTotal    = 256 << 10
	MaxConfigVarCount = 500
)

var configKeyRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// reservedConfigKeys are set by skiff for every instance.
var reservedConfigKeys = map[string]bool{"PORT": true, "DYNO": true}

// ValidateConfigKey checks a config var name: upper-case letters, digits and
// underscores, not starting with a digit, not one skiff sets itself.
func ValidateConfigKey(key string) error {
	if len(key) > MaxConfigKey || !configKeyRE.MatchString(key) {
		return Errorf(EINVALID, "invalid config key %s: use upper-case letters, digits and _, not starting with a digit (like DATABASE_URL)", quoteForUser(key))
	}
	if reservedConfigKeys[key] || strings.HasPrefix(key, "SKIFF_") || strings.HasPrefix(key, "CNB_") {
		return Errorf(EINVALID, "config key %s is set by skiff itself", key)
	}
	return nil
}

// ValidateConfigValue checks a value: any bytes but NUL (which no process
// environment can carry), at most MaxConfigValue bytes.
func ValidateConfigValue(key, value string) error {
	if strings.IndexByte(value, 0) >= 0 {
		return Errorf(EINVALID, "the value of %s contains a NUL byte, which an environment cannot carry", key)
	}
	if len(value) > MaxConfigValue {
		return Errorf(EINVALID, "the value of %s is %d bytes; the limit is %d", key, len(value), MaxConfigValue)
	}
	return nil
}

// ParseConfigAssignment splits "KEY=VALUE" at the first "=": the value may
// hold further "=", newlines, quotes — anything but NUL — and comes back
// byte for byte.
func ParseConfigAssignment(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", Errorf(EINVALID, "%s is not KEY=VALUE", quoteForUser(s))
	}
	if err := ValidateConfigKey(key); err != nil {
		return "", "", err
	}
	if err := ValidateConfigValue(key, value); err != nil {
		return "", "", err
	}
	return key, value, nil
}

// ValidateConfig checks a whole set of vars against the per-app limits.
func ValidateConfig(vars map[string]string) error {
	if len(vars) > MaxConfigVarCount {
		return Errorf(EINVALID, "%d config vars; the limit is %d", len(vars), MaxConfigVarCount)
	}
	total := 0
	for k, v := range vars {
		total += len(k) + len(v)
	}
	if total > MaxConfigTotal {
		return Errorf(EINVALID, "config vars total %d bytes; the limit is %d", total, MaxConfigTotal)
	}
	return nil
}

// ConfigService stores an app's config vars. Vars marked build-time also
// reach the build (as the CNB platform's /platform/env).
type ConfigService interface {
	Config(ctx context.Context, appID string) (map[string]string, error)
	BuildConfig(ctx context.Context, appID string) (map[string]string, error)
	// UpdateConfig changes the vars without a release (before the first
	// deploy, or with --no-restart).
	UpdateConfig(ctx context.Context, appID string, ch *ConfigChange) error
}

// ConfigChange sets and unsets config vars; Build marks the set ones as
// build-time too.
type ConfigChange struct {
	Set   map[string]string
	Unset []string
	Build bool
	// Description names the release the change makes ("" for one that
	// says which vars were set or unset).
	Description string
}

// Keys lists the keys a change touches, for descriptions and audit events.
func (c *ConfigChange) Keys() []string {
	keys := make([]string, 0, len(c.Set)+len(c.Unset))
	for k := range c.Set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return append(keys, c.Unset...)
}

// Apply returns vars with the change made, leaving vars as it was.
func (c *ConfigChange) Apply(vars map[string]string) map[string]string {
	out := make(map[string]string, len(vars)+len(c.Set))
	maps.Copy(out, vars)
	maps.Copy(out, c.Set)
	for _, k := range c.Unset {
		delete(out, k)
	}
	return out
}
