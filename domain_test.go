package skiff_test

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{
		"www.Example.COM.": "www.example.com",
		"a.b":              "a.b",
		"*.example.com":    "*.example.com",
		"xn--bcher-kva.de": "xn--bcher-kva.de",
	} {
		if got, err := skiff.NormalizeDomain(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", "example", "localhost", "a.localhost", "1.2.3.4", "[::1]", "example.com:443",
		"bücher.de", "a..b", "-a.b", "a.b-", "a.*.b", "a b.c", "a_b.c", strings.Repeat("a", 64) + ".com", "x\r\n.com"} {
		if got, err := skiff.NormalizeDomain(in); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
	if !skiff.DomainCovers("*.example.com", "www.example.com") || skiff.DomainCovers("*.example.com", "a.b.example.com") || skiff.DomainCovers("*.example.com", "example.com") {
		t.Error("wildcard coverage is wrong")
	}
}

func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"www.example.com", "*.a.b", "A.B.", "x:1", "bücher.de"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := skiff.NormalizeDomain(s)
		if err != nil {
			return
		}
		if d != strings.ToLower(d) || strings.HasSuffix(d, ".") || strings.ContainsAny(d, ":/ \r\n\x00") {
			t.Fatalf("%q normalized to %q", s, d)
		}
		if again, err := skiff.NormalizeDomain(d); err != nil || again != d {
			t.Fatalf("not idempotent: %q -> %q -> %q %v", s, d, again, err)
		}
	})
}
