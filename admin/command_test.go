package admin

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCommandParse(t *testing.T) {
	destroy := &command{name: "apps:destroy", min: 1, max: 1, flags: []flag{{name: "force"}, {name: "confirm", value: "APP"}}}
	logs := &command{name: "logs", min: 1, max: 1, format: true, flags: []flag{{name: "num", short: "n", value: "N"}, {name: "tail", short: "t"}}}
	run := &command{name: "run", min: 2, max: -1, rawFrom: 1}
	for _, tc := range []struct {
		cmd   *command
		argv  []string
		args  []string
		flags map[string]string
	}{
		{destroy, []string{"web", "--force"}, []string{"web"}, map[string]string{"force": ""}},
		{destroy, []string{"--force", "web"}, []string{"web"}, map[string]string{"force": ""}},
		{destroy, []string{"--confirm=web", "web"}, []string{"web"}, map[string]string{"confirm": "web"}},
		{destroy, []string{"--confirm", "web", "web"}, []string{"web"}, map[string]string{"confirm": "web"}},
		{destroy, []string{"--", "-rf"}, []string{"-rf"}, map[string]string{}},
		{logs, []string{"web", "-n", "5", "-t", "--format", "json"}, []string{"web"}, map[string]string{"num": "5", "tail": "", "format": "json"}},
		{run, []string{"web", "ls", "-la", "--force"}, []string{"web", "ls", "-la", "--force"}, map[string]string{}},
		{run, []string{"web", "--help"}, []string{"web", "--help"}, map[string]string{}},
		{destroy, []string{"--help"}, nil, map[string]string{"help": ""}},
	} {
		args, flags, err := tc.cmd.parse(tc.argv)
		if err != nil || !reflect.DeepEqual(args, tc.args) || !reflect.DeepEqual(flags, tc.flags) {
			t.Errorf("%s %q: %q %v %v; want %q %v", tc.cmd.name, tc.argv, args, flags, err, tc.args, tc.flags)
		}
	}
	for _, tc := range []struct {
		cmd  *command
		argv []string
	}{
		{destroy, []string{"web", "--rf"}},
		{destroy, []string{"-rf"}},
		{destroy, []string{"web", "--force=yes"}},
		{destroy, []string{"web", "--confirm"}},
		{destroy, []string{}},
		{destroy, []string{"a", "b"}},
		{destroy, []string{"web", "--format", "json"}},
		{run, []string{"web"}},
	} {
		_, _, err := tc.cmd.parse(tc.argv)
		var uerr *usageError
		if !errors.As(err, &uerr) {
			t.Errorf("%s %q: %v, want a usage error", tc.cmd.name, tc.argv, err)
		}
	}
}

// Every command in the table has a summary, a consistent argument count,
// and a unique name; app commands take the app first.
func TestCommandTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commandTable() {
		for _, n := range append([]string{c.name}, c.aliases...) {
			if seen[n] {
				t.Errorf("%s is defined twice", n)
			}
			seen[n] = true
		}
		if c.summary == "" || c.run == nil {
			t.Errorf("%s lacks a summary or a handler", c.name)
		}
		if c.max >= 0 && c.max < c.min {
			t.Errorf("%s: max %d < min %d", c.name, c.max, c.min)
		}
		if c.app && (c.min < 1 || len(c.args) < 5 || c.args[:5] != "<app>") {
			t.Errorf("%s takes an app but its usage is %q", c.name, c.args)
		}
	}
}

// The local CLI hands its terminal only to the commands that attach one
// to a process.
func TestTakesTerminal(t *testing.T) {
	for args, want := range map[string]bool{"run shop bash": true, "postgres:connect db": true, "redis:connect c": true,
		"keys:add bob": false, "logs shop -t": false, "postgres:backup db": false, "": false, "nosuch": false} {
		if got := TakesTerminal(strings.Fields(args)); got != want {
			t.Errorf("TakesTerminal(%q) = %v", args, got)
		}
	}
}
