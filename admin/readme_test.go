package admin_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEHasTheLifecycleCommands: each storage, cron, detached-run and
// release-phase command that help lists is named in the README (as
// `topic:verb`, or as one of `topic:a\|b`).
func TestREADMEHasTheLifecycleCommands(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t)
	help := s.must("root", "help").stdout
	names := regexp.MustCompile(`(?m)^\s*([a-z0-9-]+(:[a-z0-9-]+)?)\b`).FindAllStringSubmatch(help, -1)
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z]+):([a-z-]+(\\\\\\|[a-z-]+)*)").FindAllStringSubmatch(string(readme), -1) {
		for _, verb := range strings.Split(m[2], `\|`) {
			named[m[1]+":"+verb] = true
		}
	}
	n := 0
	for _, m := range names {
		name := m[1]
		if !strings.HasPrefix(name, "storage") && !strings.HasPrefix(name, "cron") && !strings.HasPrefix(name, "run:") && name != "releases:output" {
			continue
		}
		n++
		if !named[name] && !strings.Contains(string(readme), "`"+name+"`") && !strings.Contains(string(readme), "`"+name+" ") {
			t.Errorf("the README does not name %s", name)
		}
	}
	if n < 15 {
		t.Fatalf("help lists %d lifecycle commands:\n%s", n, help)
	}
}
