package skiff

import (
	"context"
	"strings"
)

// DomainCovers reports whether domain (possibly a wildcard) serves host.
func DomainCovers(domain, host string) bool {
	if rest, ok := strings.CutPrefix(domain, "*."); ok {
		i := strings.IndexByte(host, '.')
		return i > 0 && host[i+1:] == rest
	}
	return domain == host
}

// DomainService stores apps' custom domains; a host belongs to one app.
type DomainService interface {
	AddDomain(ctx context.Context, appID, host string) error    // ECONFLICT if another app has it; idempotent for its own
	RemoveDomain(ctx context.Context, appID, host string) error // ENOTFOUND if the app does not have it
	Domains(ctx context.Context, appID string) ([]string, error)
}
