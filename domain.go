package skiff

import (
	"context"
	"net/netip"
	"strings"
)

// NormalizeDomain returns the canonical form of a custom domain that a user
// attaches to an app: lower case, no trailing dot, ASCII (internationalized
// names in their xn-- form), at least two labels, no port, no IP literal.
// "*.example.com" is a wildcard covering one label below example.com.
func NormalizeDomain(s string) (string, error) {
	host := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	bad := func(why string) (string, error) {
		return "", Errorf(EINVALID, "invalid domain %s: %s", quoteForUser(s), why)
	}
	if host == "" || len(host) > 253 {
		return bad("use a host name like www.example.com")
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return bad("IP addresses cannot be domains")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return bad("use a fully qualified name like www.example.com")
	}
	for i, l := range labels {
		if l == "*" && i == 0 {
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad("each label is 1 to 63 letters, digits or inner hyphens")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				if r > 0x7f {
					return bad("give internationalized names in their xn-- (punycode) form")
				}
				return bad("each label is 1 to 63 letters, digits or inner hyphens")
			}
		}
	}
	if labels[len(labels)-1] == "localhost" || host == "localhost" {
		return bad("localhost is not a public name")
	}
	return host, nil
}

// DomainCovers reports whether domain (possibly a wildcard) serves host.
func DomainCovers(domain, host string) bool {
	if rest, ok := strings.CutPrefix(domain, "*."); ok {
		i := strings.IndexByte(host, '.')
		return i > 0 && host[i+1:] == rest
	}
	return domain == host
}

// DomainService stores custom domains and per-app settings.
type DomainService interface {
	AddDomain(ctx context.Context, appID, host string) error // ECONFLICT if another app has it
	RemoveDomain(ctx context.Context, appID, host string) error
	Domains(ctx context.Context, appID string) ([]string, error)
	Settings(ctx context.Context, appID string) (map[string]string, error)
	SetSettings(ctx context.Context, appID, action string, settings map[string]string) error
}
