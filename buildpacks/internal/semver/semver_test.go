package semver

import (
	"testing"
)

func TestRangeContains(t *testing.T) {
	for _, tc := range []struct {
		rng     string
		yes, no []string
	}{
		{"*", []string{"0.0.0", "24.1.0"}, []string{"24.0.0-rc.1"}},
		{"", []string{"1.0.0"}, nil},
		{"x", []string{"1.0.0"}, nil},
		{"18", []string{"18.0.0", "18.20.8"}, []string{"17.9.9", "19.0.0", "19.0.0-rc.1"}},
		{"18.x", []string{"18.0.0", "18.20.8"}, []string{"19.0.0"}},
		{"18.2.x", []string{"18.2.0", "18.2.9"}, []string{"18.3.0"}},
		{"v20.1.0", []string{"20.1.0"}, []string{"20.1.1"}},
		{"=20.1.0", []string{"20.1.0"}, []string{"20.1.1"}},
		{">=18", []string{"18.0.0", "26.1.0"}, []string{"17.9.0"}},
		{">= 18.0.0 < 21", []string{"18.0.0", "20.99.0"}, []string{"21.0.0", "21.0.0-0"}},
		{">18", []string{"19.0.0"}, []string{"18.9.9"}},
		{">18.2", []string{"18.3.0"}, []string{"18.2.9"}},
		{">18.2.3", []string{"18.2.4"}, []string{"18.2.3"}},
		{"<18", []string{"17.9.9"}, []string{"18.0.0", "18.0.0-rc.1"}},
		{"<=18", []string{"18.99.0"}, []string{"19.0.0"}},
		{"<=18.2", []string{"18.2.9"}, []string{"18.3.0"}},
		{"<=18.2.3", []string{"18.2.3"}, []string{"18.2.4"}},
		{"~1.2.3", []string{"1.2.3", "1.2.9"}, []string{"1.3.0", "1.2.2"}},
		{"~1.2", []string{"1.2.0", "1.2.9"}, []string{"1.3.0"}},
		{"~1", []string{"1.0.0", "1.9.9"}, []string{"2.0.0"}},
		{"~>1.2", []string{"1.2.5"}, []string{"1.3.0"}},
		{"^1.2.3", []string{"1.2.3", "1.99.0"}, []string{"2.0.0", "1.2.2"}},
		{"^0.2.3", []string{"0.2.3", "0.2.9"}, []string{"0.3.0"}},
		{"^0.0.3", []string{"0.0.3"}, []string{"0.0.4"}},
		{"^0.0", []string{"0.0.9"}, []string{"0.1.0"}},
		{"^0", []string{"0.9.9"}, []string{"1.0.0"}},
		{"^1.x", []string{"1.0.0", "1.5.0"}, []string{"2.0.0"}},
		{"^20.10.0", []string{"20.10.0", "20.19.0"}, []string{"21.0.0", "20.9.0"}},
		{"1.2.3 - 2.3.4", []string{"1.2.3", "2.3.4"}, []string{"2.3.5", "1.2.2"}},
		{"1.2 - 2.3", []string{"1.2.0", "2.3.9"}, []string{"2.4.0"}},
		{"16 - 18", []string{"16.0.0", "18.20.0"}, []string{"19.0.0", "15.9.9"}},
		{"18 || 20", []string{"18.1.0", "20.1.0"}, []string{"19.1.0", "22.0.0"}},
		{"^18.17.0 || >=20.5.0", []string{"18.17.0", "20.5.0", "26.0.0"}, []string{"18.16.0", "19.0.0", "20.4.0"}},
		{">=1.2.3-beta.2", []string{"1.2.3-beta.2", "1.2.3-beta.10", "1.2.3", "2.0.0"}, []string{"1.2.3-beta.1", "1.2.4-beta.3"}},
		{">*", nil, []string{"0.0.0", "1.0.0"}},
		{"<*", nil, []string{"0.0.0"}},
	} {
		r, err := ParseRange(tc.rng)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", tc.rng, err)
			continue
		}
		for _, v := range tc.yes {
			if !r.Contains(MustParse(v)) {
				t.Errorf("%q (%s) should contain %s", tc.rng, r, v)
			}
		}
		for _, v := range tc.no {
			if r.Contains(MustParse(v)) {
				t.Errorf("%q (%s) should not contain %s", tc.rng, r, v)
			}
		}
	}
}

func TestParseRangeErrors(t *testing.T) {
	for _, bad := range []string{"lts/*", "node 18", "18.x.2", "01.2.3", "1.2.3.4", ">=abc", "^", "1.2-beta", "latest", "18,20", string(make([]byte, 300))} {
		if r, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) = %s, want an error", bad, r)
		}
	}
}

func TestMax(t *testing.T) {
	vs := []Version{MustParse("18.20.8"), MustParse("20.19.0"), MustParse("20.20.2"), MustParse("22.1.0"), MustParse("20.21.0-rc.1")}
	r, _ := ParseRange("20.x")
	if v, ok := r.Max(vs); !ok || v.String() != "20.20.2" {
		t.Errorf("Max = %s %v", v, ok)
	}
	r, _ = ParseRange(">=30")
	if _, ok := r.Max(vs); ok {
		t.Error("Max found a version for >=30")
	}
}

func TestCompare(t *testing.T) {
	order := []string{"1.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"}
	for i := 1; i < len(order); i++ {
		a, b := MustParse(order[i-1]), MustParse(order[i])
		if a.Compare(b) >= 0 || b.Compare(a) <= 0 {
			t.Errorf("%s should sort before %s", a, b)
		}
	}
}

var probes = func() []Version {
	var vs []Version
	for _, s := range []string{"0.0.0", "0.0.1", "0.1.0", "0.1.5", "1.0.0-0", "1.0.0-rc.1", "1.0.0", "1.2.3", "1.2.4", "1.3.0", "2.0.0-beta", "2.0.0", "17.9.9", "18.0.0", "18.20.8", "20.0.0", "24.1.0", "99.0.0"} {
		vs = append(vs, MustParse(s))
	}
	return vs
}()

// FuzzParseRange: parsing never panics, and a parsed range means the same
// after a round trip through its canonical form.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"18.x", ">=18 <21", "^20.10.0", "~1.2", "16 - 18", "18 || >=20.5.0", "*", ">= 1.2.3-beta.1", "^0.0.x", "<=1.2", "v1", "=1.2.3+build"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		again, err := parseRange(r.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", r.String(), s, err)
		}
		for _, v := range probes {
			if r.Contains(v) != again.Contains(v) {
				t.Fatalf("%q and its canonical form %q disagree on %s", s, r.String(), v)
			}
		}
	})
}
