package skiff

import (
	"strings"
	"testing"
)

func TestCanonicalHost(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"app.skiff.test", "app.skiff.test", true},
		{"App.Skiff.TEST", "app.skiff.test", true},
		{"app.skiff.test.", "app.skiff.test", true},
		{"app.skiff.test:443", "app.skiff.test", true},
		{"A.EXAMPLE.COM.:8080", "a.example.com", true},
		{"app.skiff.test:", "app.skiff.test", true},
		{"[::1]:80", "[::1]", true},
		{"[FE80::1]", "[fe80::1]", true},
		{"127.0.0.1:8080", "127.0.0.1", true},
		{"", "", false},
		{".", "", false},
		{"a..b", "", false},
		{"a b", "", false},
		{"a\r\nb", "", false},
		{"a\x00b", "", false},
		{"app.test:80:80", "", false},
		{"app.test:http", "", false},
		{"app.test:1234567", "", false},
		{"аpp.test", "", false}, // Cyrillic а
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"[zz]", "", false},
		{"a/b", "", false},
		{strings.Repeat("a", 300), "", false},
	} {
		got, ok := CanonicalHost(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCanonicalHostAllocations(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { CanonicalHost("app.skiff.test:443") })
	if n != 0 {
		t.Errorf("CanonicalHost allocates %v times for a lower-case host", n)
	}
}

func FuzzCanonicalHost(f *testing.F) {
	for _, s := range []string{"app.skiff.test", "A.B.", "a:80", "[::1]:443", "a..b", "\r\n", "é.test", "[", "a:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := CanonicalHost(in)
		if !ok {
			if got != "" {
				t.Fatalf("rejected %q but returned %q", in, got)
			}
			return
		}
		if got == "" || strings.ToLower(got) != got || strings.HasSuffix(got, ".") || strings.ContainsAny(got, " \r\n\t/\\@") {
			t.Fatalf("CanonicalHost(%q) = %q: not canonical", in, got)
		}
		if again, ok := CanonicalHost(got); !ok || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, got, again, ok)
		}
	})
}

func TestValidateDomain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"www.example.com", "www.example.com"},
		{"WWW.Example.COM.", "www.example.com"},
		{"*.example.com", "*.example.com"},
		{"example.com", "example.com"},
		{"localhost", ""},
		{"1.2.3.4", ""},
		{"example.com:443", ""},
		{"*.*.example.com", ""},
		{"-a.example.com", ""},
		{"a-.example.com", ""},
		{"[::1]", ""},
		{"xn--80ak6aa92e.com", "xn--80ak6aa92e.com"},
		{"*example.com", ""},
		{"a." + strings.Repeat("b", 64) + ".com", ""},
		{"", ""},
	} {
		got, err := ValidateDomain(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ValidateDomain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzValidateDomain(f *testing.F) {
	for _, s := range []string{"www.example.com", "*.a.b", "a", "1.2.3.4", "A.B.", "*.", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ValidateDomain(in)
		if err != nil {
			return
		}
		if again, err := ValidateDomain(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, got, again, err)
		}
		name := strings.TrimPrefix(got, "*.")
		if c, ok := CanonicalHost(name); !ok || c != name || !strings.Contains(name, ".") || strings.Contains(name, "*") {
			t.Fatalf("ValidateDomain(%q) = %q: not a canonical DNS name", in, got)
		}
	})
}
