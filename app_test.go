package skiff_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestValidateAppName(t *testing.T) {
	good := []string{"ab", "my-app", "a1", "web2", strings.Repeat("a", 63)}
	bad := []string{"", "a", "A", "../x", "..", ".", "a/b", "a;id", "$(id)", "`id`", "a b", "-rf", "--help",
		"test_app", "app:latest", "app.git", "a\x00b", "a\nb", "аpp" /* Cyrillic a */, "app\u202e", "app🚀",
		strings.Repeat("a", 64), strings.Repeat("a", 300), "app-", "1app", "xn--app", "skiff", "www"}
	for _, name := range good {
		if err := skiff.ValidateAppName(name); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
	for _, name := range bad {
		err := skiff.ValidateAppName(name)
		if skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%q accepted (%v)", name, err)
		} else if len(err.Error()) > 300 {
			t.Errorf("error for a %d-byte name is %d bytes long", len(name), len(err.Error()))
		}
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z][a-z0-9-]{0,61}[a-z0-9]$`)

func FuzzValidateAppName(f *testing.F) {
	for _, s := range []string{"myapp", "../x", "a;id", "$(id)", "-rf", "аpp", "a--b", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if skiff.ValidateAppName(name) == nil && !dnsLabel.MatchString(name) {
			t.Fatalf("accepted %q, which is not a DNS label", name)
		}
	})
}
