package runtime

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestImageUserAndArgs(t *testing.T) {
	for u, want := range map[string][2]uint32{"": {0, 0}, "1000": {1000, 1000}, "1000:2000": {1000, 2000}} {
		uid, gid, name, err := parseUser(u)
		if err != nil || uid != want[0] || gid != want[1] || name != "" {
			t.Errorf("parseUser(%q) = %d %d %q %v", u, uid, gid, name, err)
		}
	}
	// Names are looked up in the image once it is mounted.
	for _, u := range []string{"cnb", "1000:cnb", "cnb:1000", "cnb:staff"} {
		if _, _, name, err := parseUser(u); err != nil || name != u {
			t.Errorf("parseUser(%q) = %q %v", u, name, err)
		}
	}
	for _, bad := range []string{"70000", "1000:70000", ":", "cnb:", ":1000"} {
		if _, _, _, err := parseUser(bad); err == nil {
			t.Errorf("parseUser(%q) accepted", bad)
		}
	}
	cnb := &image{cnb: true}
	if a, _ := cnb.args("web", nil); strings.Join(a, " ") != "/cnb/process/web" {
		t.Errorf("cnb web: %v", a)
	}
	if a, _ := cnb.args("run", []string{"bash", "-c", "echo hi"}); len(a) != 2 || a[0] != "/cnb/lifecycle/launcher" {
		t.Errorf("cnb run: %v", a)
	}
	plain := &image{entrypoint: []string{"/app/probe"}, cmd: []string{"serve"}}
	if a, _ := plain.args("web", nil); strings.Join(a, " ") != "/app/probe serve" {
		t.Errorf("plain: %v", a)
	}
	if a, _ := plain.args("web", []string{"exit", "3"}); strings.Join(a, " ") != "/app/probe exit 3" {
		t.Errorf("plain with command: %v", a)
	}
	if _, err := (&image{}).args("web", nil); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("no command: %v", err)
	}
	e := env(&image{env: []string{"PATH=/bin", "PORT=1"}}, &skiff.InstanceSpec{ProcessType: "web", Index: 2, Release: 7, Env: map[string]string{"PORT": "9", "B": "x\ny", "A": "1=2"}})
	if got := strings.Join(e, "|"); got != "PATH=/bin|PORT=5000|A=1=2|B=x\ny|SKIFF_PROCESS=web.2|DYNO=web.2|SKIFF_RELEASE=v7" {
		t.Errorf("env %q", got)
	}
}
