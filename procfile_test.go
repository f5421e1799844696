package skiff

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseProcfile(t *testing.T) {
	got, err := ParseProcfile([]byte("\xef\xbb\xbf# processes\r\nweb: bundle exec puma -p $PORT\r\n\r\nworker:   ./worker --queue=a:b  \n  clock:bin/clock\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []ProcessType{
		{Name: "web", Command: "bundle exec puma -p $PORT", Line: 2},
		{Name: "worker", Command: "./worker --queue=a:b", Line: 4},
		{Name: "clock", Command: "bin/clock", Line: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseProcfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "declares no process types"},
		{"only comments", "# nothing\n\n", "declares no process types"},
		{"binary", "web: a\n\x00\x01\x02", "line 2: not text"},
		{"latin1", "web: caf\xe9", "line 1: not text"},
		{"no colon", "web ./server", `line 1: expected "<process type>: <command>"`},
		{"space in name", "my web: ./server", "line 1: expected"},
		{"empty name", ": ./server", "line 1: expected"},
		{"empty command", "web: ./s\nworker:   \n", "line 2: process type worker has no command"},
		{"duplicate", "web: a\nworker: b\nweb: c\n", "line 3: process type web is already defined on line 1"},
		{"underscore", "celery_beat: celery beat", `line 1: invalid process type "celery_beat" (replace _ with -)`},
		{"upper case", "Web: ./s", "(use lower case)"},
		{"leading hyphen", "-web: ./s", "invalid process type"},
		{"trailing hyphen", "web-: ./s", "invalid process type"},
		{"too long", strings.Repeat("a", 64) + ": x", "invalid process type"},
		{"conflict ours", "web: a\n<<<<<<< HEAD\nweb: b\n", "line 2: merge conflict marker"},
		{"conflict sep", "web: a\n=======\n", "line 2: merge conflict marker"},
		{"conflict theirs", ">>>>>>> main\n", "line 1: merge conflict marker"},
		{"bare CR", "web: a\rworker: b\n", "control character"},
		{"escape", "web: \x1b[2Jrm -rf\n", "control character"},
		{"too big", "web: " + strings.Repeat("x", MaxProcfileSize), "larger than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcfile([]byte(tc.in))
			if err == nil {
				t.Fatalf("parsed %q without error", tc.in)
			}
			if ErrorCode(err) != EINVALID {
				t.Errorf("code %q, want %q", ErrorCode(err), EINVALID)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestParseProcfileTooManyTypes(t *testing.T) {
	var b strings.Builder
	for i := 0; i <= MaxProcessTypes; i++ {
		b.WriteString("p" + strconv.Itoa(i) + ": run\n")
	}
	if _, err := ParseProcfile([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 100 process types") {
		t.Fatalf("got %v, want the process type limit", err)
	}
}

func TestValidateProcessType(t *testing.T) {
	for _, ok := range []string{"web", "worker", "worker-2", "1", "a", strings.Repeat("a", 63)} {
		if err := ValidateProcessType(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-", "a-", "-a", "a_b", "A", "a.b", "a b", "é", strings.Repeat("a", 64)} {
		if err := ValidateProcessType(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseProcfile checks that any input either parses into valid,
// unique, non-empty entries that survive a round trip, or fails with
// EINVALID and a line-numbered or whole-file message; never a panic.
func FuzzParseProcfile(f *testing.F) {
	for _, seed := range []string{
		"web: ./server\n",
		"\xef\xbb\xbfweb: a\r\nworker: b\r\n",
		"# c\n\nweb: a\nweb: b\n",
		"<<<<<<< HEAD\nweb: a\n=======\nweb: b\n>>>>>>> x\n",
		"web:\n",
		"\x00\x01",
		"web: a\rb",
		"Web_1: x",
		": x",
		"release: ./migrate && echo ok\nweb: bash -c 'exec ./s -p $PORT'\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		procs, err := ParseProcfile(data)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("code %q for %q", ErrorCode(err), err)
			}
			return
		}
		if len(procs) == 0 {
			t.Fatal("no error and no process types")
		}
		seen := map[string]bool{}
		var rendered strings.Builder
		for _, p := range procs {
			if err := ValidateProcessType(p.Name); err != nil {
				t.Fatalf("accepted invalid name %q", p.Name)
			}
			if seen[p.Name] {
				t.Fatalf("duplicate %q accepted", p.Name)
			}
			seen[p.Name] = true
			if strings.TrimSpace(p.Command) == "" || strings.ContainsAny(p.Command, "\r\n\x00") {
				t.Fatalf("bad command %q accepted", p.Command)
			}
			rendered.WriteString(p.String() + "\n")
		}
		again, err := ParseProcfile([]byte(rendered.String()))
		if err != nil {
			t.Fatalf("round trip of %q: %v", rendered.String(), err)
		}
		for i := range procs {
			if again[i].Name != procs[i].Name || again[i].Command != procs[i].Command {
				t.Fatalf("round trip changed %+v into %+v", procs[i], again[i])
			}
		}
	})
}
