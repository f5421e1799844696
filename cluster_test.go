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
