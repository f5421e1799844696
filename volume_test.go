package skiff_test

import (
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestParseMountSpec(t *testing.T) {
	for spec, want := range map[string][2]string{
		"uploads:/app/storage":                         {"uploads", "/app/storage"},
		"my_app.data:/workspace/data/":                 {"my_app.data", "/workspace/data"},
		"/var/lib/dokku/data/storage/lollipop:/srv/x":  {"lollipop", "/srv/x"},
		"/var/lib/dokku/data/storage/lollipop/:/srv/x": {"lollipop", "/srv/x"},
	} {
		v, p, err := skiff.ParseMountSpec(spec)
		if err != nil || v != want[0] || p != want[1] {
			t.Errorf("%s: %q %q %v", spec, v, p, err)
		}
	}
	for _, bad := range []string{
		"", "uploads", "uploads:", ":/data", "Uploads:/data", "up/loads:/data", "..:/data", "a..b:/data",
		"/etc:/data", "/var/lib/dokku/data/storage/../../x:/data", "/home/me/data:/data",
		"uploads:data", "uploads:/", "uploads:/workspace", "uploads:/app", "uploads:/proc/x", "uploads:/dev",
		"uploads:/sys", "uploads:/cnb/lifecycle", "uploads:/layers", "uploads:/etc/hosts", "uploads:/a/../b",
		"uploads:/a b", "uploads:/a,b", "uploads:/a\x00", "uploads:/" + strings.Repeat("a", 300),
	} {
		if _, _, err := skiff.ParseMountSpec(bad); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestValidateMounts(t *testing.T) {
	m := func(vol, path string, types ...string) skiff.AppMount {
		return skiff.AppMount{Volume: vol, VolumeID: "vol-" + vol, Path: path, ProcessTypes: types}
	}
	ok := [][]skiff.AppMount{
		{m("a", "/data"), m("b", "/cache")},
		{m("a", "/data", "web"), m("b", "/data", "worker")},
		{m("a", "/data"), m("a", "/data2")},
	}
	for _, ms := range ok {
		if err := skiff.ValidateMounts(ms); err != nil {
			t.Errorf("%+v: %v", ms, err)
		}
	}
	bad := [][]skiff.AppMount{
		{m("a", "/data"), m("b", "/data")},
		{m("a", "/data"), m("b", "/data/sub")},
		{m("a", "/data", "web"), m("b", "/data", "web", "run")},
		{m("a", "/data", "web"), m("b", "/data")},
	}
	for _, ms := range bad {
		if err := skiff.ValidateMounts(ms); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%+v: %v", ms, err)
		}
	}
	mounts := []skiff.AppMount{m("a", "/a"), m("w", "/w", "worker", "cron")}
	if got := skiff.MountsFor(mounts, "web"); len(got) != 1 || got[0].Path != "/a" {
		t.Errorf("web gets %+v", got)
	}
	if got := skiff.MountsFor(mounts, skiff.OneOffCron); len(got) != 2 {
		t.Errorf("cron gets %+v", got)
	}
}

func FuzzParseMountSpec(f *testing.F) {
	f.Add("uploads:/app/storage")
	f.Add("/var/lib/dokku/data/storage/x:/data")
	f.Fuzz(func(t *testing.T, spec string) {
		v, p, err := skiff.ParseMountSpec(spec)
		if err != nil {
			return
		}
		if skiff.ValidateVolumeName(v) != nil || strings.Contains(v, "/") || !strings.HasPrefix(p, "/") ||
			slices.Contains(strings.Split(p, "/"), "..") || path.Clean(p) != p || strings.ContainsAny(p, ":, \n\x00") || p == "/" || p == "/proc" || strings.HasPrefix(p, "/proc/") {
			t.Fatalf("%q accepted as %q at %q", spec, v, p)
		}
	})
}
