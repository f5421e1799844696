package main

import "testing"

// A prefix becomes paths that teardown removes (/run/<prefix>, cgroups):
// anything but a plain name is refused before anything is touched.
func TestTeardownRefusesBadPrefix(t *testing.T) {
	for _, p := range []string{"", "..", "../etc", "a/b", "A", "-x", "1abc", "averyveryverylongprefix"} {
		if code := teardown(t.TempDir(), []string{"--resource-prefix", p}); code != 2 {
			t.Errorf("teardown --resource-prefix %q: exit %d, want 2", p, code)
		}
	}
	for _, p := range []string{"skiff", "t1234", "my-skiff"} {
		if err := checkResourcePrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}
