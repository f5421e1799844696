package skiff_test

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestParseConfigAssignment(t *testing.T) {
	for in, want := range map[string][2]string{
		"A=b":                       {"A", "b"},
		"DATABASE_URL=postgres://x": {"DATABASE_URL", "postgres://x"},
		"K=a=b=c":                   {"K", "a=b=c"},
		"K=":                        {"K", ""},
		"K=line1\nline2\r\n":        {"K", "line1\nline2\r\n"},
		"K=x\nLD_PRELOAD=/tmp/x.so": {"K", "x\nLD_PRELOAD=/tmp/x.so"},
		`K="'$` + "`":               {"K", `"'$` + "`"},
		"_X=\xff\xfe":               {"_X", "\xff\xfe"},
	} {
		k, v, err := skiff.ParseConfigAssignment(in)
		if err != nil || k != want[0] || v != want[1] {
			t.Errorf("%q: %q %q %v", in, k, v, err)
		}
	}
	for _, in := range []string{"A", "=b", "a=b", "1A=b", "A B=c", "A-B=c", "PORT=1", "SKIFF_X=1", "A\nB=c",
		"K=a\x00b", strings.Repeat("K", 200) + "=x", "K=" + strings.Repeat("x", skiff.MaxConfigValue+1)} {
		if _, _, err := skiff.ParseConfigAssignment(in); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%q accepted (%v)", in[:min(len(in), 40)], err)
		}
	}
}

func FuzzParseConfigAssignment(f *testing.F) {
	for _, s := range []string{"A=b", "K=a=b", "K=x\nY=z", "PORT=1", "a=b", "K=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, v, err := skiff.ParseConfigAssignment(s)
		if err != nil {
			return
		}
		if k+"="+v != s {
			t.Fatalf("%q did not round-trip: %q=%q", s, k, v)
		}
		if strings.ContainsAny(k, "=\n\x00") || strings.IndexByte(v, 0) >= 0 {
			t.Fatalf("accepted key %q value %q", k, v)
		}
	})
}
