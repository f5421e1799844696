package skiff

import (
	"strings"
	"testing"
)

func TestValidateIngressClass(t *testing.T) {
	for _, ok := range []string{"nginx", "traefik", "public-nginx", "nginx.example.com", "a", "0x"} {
		if err := ValidateIngressClass(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Nginx", "-nginx", "nginx-", ".x", "a..b", "a b", "nginx;rm -rf /", "a/b", "a_b", strings.Repeat("a", 254), "ngïnx"} {
		if err := ValidateIngressClass(bad); ErrorCode(err) != EINVALID {
			t.Errorf("%q was taken: %v", bad, err)
		}
	}
}

func TestValidateRegistry(t *testing.T) {
	for _, ok := range []string{"registry.example.com", "registry.example.com/team", "10.0.0.5:5000/a/b", "reg.example.com:443/team_x/app-y", "localhost:5000", "localhost"} {
		if err := ValidateRegistry(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "registry", "https://registry.example.com", "Registry.Example.com", "registry.example.com/Team",
		"registry.example.com//x", "registry.example.com/", "registry.example.com/a..b", "reg.example.com:port", "a b.example.com", "-x.example.com",
		"registry.example.com/team?x=1", strings.Repeat("a.", 101) + "com"} {
		if err := ValidateRegistry(bad); ErrorCode(err) != EINVALID {
			t.Errorf("%q was taken: %v", bad, err)
		}
	}
	// Credentials in the reference are refused, and never repeated.
	for _, withCreds := range []string{"bob:hunter2@registry.example.com/team", "https://bob:hunter2@registry.example.com", "hunter2@registry.example.com"} {
		err := ValidateRegistry(withCreds)
		if ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), "credentials") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", withCreds, err)
		}
	}
}
