package skiff

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCommandLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"apps:list", []string{"apps:list"}},
		{"  apps:create   web  ", []string{"apps:create", "web"}},
		{"git-receive-pack '/my app'", []string{"git-receive-pack", "/my app"}},
		{`config:set web "A=b c" 'D=$(id)'`, []string{"config:set", "web", "A=b c", "D=$(id)"}},
		{`config:set web A=\"x\"`, []string{"config:set", "web", `A="x"`}},
		{`echo "a\"b\\c\$d\e"`, []string{"echo", `a"b\c$d\e`}},
		{`x ''`, []string{"x", ""}},
		{"a;id", []string{"a;id"}},
		{"$(id) `id`", []string{"$(id)", "`id`"}},
		{"a\\\nb", []string{"ab"}},
		{"a\nb", []string{"a", "b"}},
	} {
		got, err := ParseCommandLine(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCommandLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "   ", `config:set web "K=V`, "a 'b", "a\\", "a\x00b", strings.Repeat("a", MaxCommandLine+1)} {
		if got, err := ParseCommandLine(in); err == nil {
			t.Errorf("ParseCommandLine(%q) = %q, want an error", in, got)
		}
	}
}

// quote is the inverse of ParseCommandLine for one word.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func FuzzParseCommandLine(f *testing.F) {
	for _, s := range []string{"apps:create web", `config:set a "K=V`, "git-upload-pack '~/x.git'", `a\ b "c\"d" 'e'`, "\x00", "$(id)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := ParseCommandLine(line)
		if err != nil {
			return
		}
		if len(words) == 0 {
			t.Fatal("no error and no words")
		}
		// Quoting the words and parsing again must give the same words.
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = quote(w)
		}
		again, err := ParseCommandLine(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) {
			t.Fatalf("round trip of %q: %q, %v", words, again, err)
		}
	})
}
