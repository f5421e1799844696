package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The hook refuses what git would not run, and a run outside skiff's git
// server, with skiff hook's own words.
func TestHookRefusesBadUse(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "skiff-hook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		env  []string
		code int
		want string
	}{
		{nil, nil, 2, "usage: skiff-hook hook pre-receive"},
		{[]string{"pre-receive"}, nil, 2, "usage: skiff-hook hook pre-receive"},
		{[]string{"hook", "post-receive"}, nil, 2, "usage: skiff hook pre-receive"},
		{[]string{"hook", "pre-receive"}, nil, 1, "not run by skiff's git server"},
		{[]string{"hook", "pre-receive"}, []string{"SKIFF_PUSH_TOKEN=x", "SKIFF_CONTROL_SOCKET=" + filepath.Join(t.TempDir(), "none")}, 1, "!"},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = c.env
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("skiff-hook %v: exit %d, %q; want %d, %q", c.args, code, out, c.code, c.want)
		}
	}
}
