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

// DomainService stores custom domains and per-app settings.
type DomainService interface {
	AddDomain(ctx context.Context, appID, host string) error // ECONFLICT if another app has it
	RemoveDomain(ctx context.Context, appID, host string) error
	Domains(ctx context.Context, appID string) ([]string, error)
	Settings(ctx context.Context, appID string) (map[string]string, error)
	SetSettings(ctx context.Context, appID, action string, settings map[string]string) error
}
