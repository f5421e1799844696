package skiff_test

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

const (
	zero = "0000000000000000000000000000000000000000"
	a    = "1111111111111111111111111111111111111111"
	b    = "2222222222222222222222222222222222222222"
)

func TestParseRefUpdates(t *testing.T) {
	got, err := skiff.ParseRefUpdates(zero + " " + a + " refs/heads/main\n" + a + " " + b + " refs/tags/v1\n")
	if err != nil || len(got) != 2 || got[0].Ref != "refs/heads/main" || got[1].New != b {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, in := range []string{
		"x y z",
		zero + " " + a,
		zero + " " + a + " main",
		zero + " " + a + " refs/heads/-x",
		zero + " " + a + " refs/heads/--output=/tmp/x",
		zero + " " + a + " refs/heads/../../x",
		zero + " " + a + " refs/heads/a b",
		zero + " " + strings.ToUpper(strings.Repeat("a", 40)) + " refs/heads/main",
		zero + " " + a + " refs/heads/" + strings.Repeat("x", 300),
		zero + " " + a + " refs/heads/x.lock",
		zero + " " + a + " refs/heads/a\x00b",
	} {
		if _, err := skiff.ParseRefUpdates(in); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("accepted %q (%v)", in, err)
		}
	}
	many := strings.Repeat(zero+" "+a+" refs/heads/main\n", skiff.MaxRefUpdates+1)
	if _, err := skiff.ParseRefUpdates(many); err == nil {
		t.Error("accepted more than MaxRefUpdates")
	}
}

func FuzzParseRefUpdates(f *testing.F) {
	f.Add(zero + " " + a + " refs/heads/main\n")
	f.Add(a + " " + zero + " refs/heads/-x\n")
	f.Add("\n\n" + a + " " + b + " refs/tags/v1.0\n")
	f.Fuzz(func(t *testing.T, in string) {
		updates, err := skiff.ParseRefUpdates(in)
		if err != nil {
			return
		}
		for _, u := range updates {
			if !strings.HasPrefix(u.Ref, "refs/") || strings.Contains(u.Ref, "/-") || strings.ContainsAny(u.Ref, " \n\x00") || strings.Contains(u.Ref, "..") {
				t.Fatalf("accepted ref %q", u.Ref)
			}
			if !skiff.ValidObjectID(u.Old) || !skiff.ValidObjectID(u.New) {
				t.Fatalf("accepted ids %q %q", u.Old, u.New)
			}
		}
	})
}
