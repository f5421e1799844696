package skiff

import (
	"context"
	"strings"
	"time"
)

// AppRoute is how the router serves one app: which hosts reach it and how.
// The backends are not part of it: they change only through a health-gated
// switch (Routes.Deploy), so that no other path can send traffic to an
// instance that has not answered.
type AppRoute struct {
	AppID string // keys the access log file and certificates; stable across renames
	Name  string // the app's name: <Name>.<base domain> is always one of its hosts

	// Domains are the app's custom hosts, as ValidateDomain returns them;
	// "*.example.com" matches one label below example.com (wildcards are
	// for admins: the admin layer checks who adds them).
	Domains []string

	Health HealthCheck

	// Maintenance answers every request with 503 and MaintenancePage (an HTML
	// document; empty for the default page) while the instances keep running.
	Maintenance     bool
	MaintenancePage string

	// ACME obtains and renews certificates for the app's hosts automatically
	// (not for wildcard domains, which need DNS-01).
	ACME bool
	// HSTS adds Strict-Transport-Security to HTTPS responses.
	HSTS bool
	// NoRedirect keeps serving plain HTTP once the app has a certificate;
	// by default such requests are redirected to HTTPS.
	NoRedirect bool

	MaxBodyBytes    int64         // request body cap (413 above it); 0 for the router's default, <0 for none
	ResponseTimeout time.Duration // time to the app's first byte; 0 for the default (30 s)
	DrainTimeout    time.Duration // grace for old instances after a switch; 0 for the default (30 s)
}

// HealthCheck is what a new instance must answer before it takes traffic.
// With an empty Path, any HTTP answer below 500 to "GET /" counts (the port
// accepts connections and speaks HTTP); with a Path, only 2xx and 3xx.
type HealthCheck struct {
	Path     string
	Timeout  time.Duration // per attempt; 0 for 5 s
	Interval time.Duration // between attempts; 0 for 1 s
	Deadline time.Duration // for the whole check; 0 for 60 s
}

// CertInfo describes a certificate the router serves for an app.
type CertInfo struct {
	Source   string    `json:"source"` // "uploaded" or "acme"
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after,omitzero"` // zero while pending or failed
	// Status is "valid" for a certificate in hand; an ACME host without one
	// is "pending" (being ordered) or "failed". Error is the CA's last error
	// (of an order, or of a renewal of a valid certificate) and NextRetry
	// when it will be asked again.
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	NextRetry *time.Time `json:"next_retry,omitempty"`
}

// Routes is the router as the deploy pipeline and the admin commands see it.
// All methods are safe for concurrent use; a change is visible to the next
// request as a whole (the table is swapped atomically, never edited in place).
type Routes interface {
	// SetApp adds or replaces the app's route (keyed by AppID), keeping its
	// backends. A host owned by another app fails with ECONFLICT and changes
	// nothing.
	SetApp(route AppRoute) error
	// Deploy health-checks backends ("ip:port"), switches the app's traffic
	// to them in one step, then waits until the previous backends have no
	// requests in flight or the drain timeout passed (then cuts them), so
	// that the caller may stop the old instances when it returns. If a
	// backend fails its check nothing changes and the error says why
	// (EUNAVAILABLE). Deploys of one app are serialized.
	Deploy(ctx context.Context, appID string, backends []string) error
	// RemoveApp stops routing to the app at once and forgets it (requests in
	// flight finish); its certificate stays until RemoveCertificate.
	// Idempotent.
	RemoveApp(appID string)
	// SetCertificate stores an uploaded certificate for the app from what
	// `certs:add` read on stdin (at most MaxCertBundle bytes): PEM blocks of
	// the chain and the key in any order, or a tar of server.crt and
	// server.key as Dokku takes it. It must cover one of the app's hosts;
	// anything else is EINVALID with a message for the user.
	SetCertificate(appID string, bundle []byte) error
	RemoveCertificate(appID string) error // idempotent
	// SetDefaultCertificate stores the certificate for clients that send no
	// server name, and for hosts it covers whose app has none of its own
	// (a wildcard for the base domain).
	SetDefaultCertificate(bundle []byte) error
	RemoveDefaultCertificate() error
	Certificates(appID string) []CertInfo
}

// AccessLogs gives `logs <app> -p router` the router's access log: one JSON
// object per line (time, app, host, method, path, status, bytes,
// duration_ms, instance, request_id, client, proto, tls).
type AccessLogs interface {
	// AccessLogPath is the app's current file; rotated ones end in .1, .2 ….
	AccessLogPath(appID string) string
	// TailAccessLog delivers new lines until ctx ends, then closes the
	// channel. A reader that falls more than 1024 lines behind loses lines.
	TailAccessLog(ctx context.Context, appID string) <-chan []byte
}

// MaxCertBundle caps what `certs:add` reads from its user.
const MaxCertBundle = 1 << 20

// maxHostLen is the longest DNS name (253) plus room for a port.
const maxHostLen = 260

// CanonicalHost returns host as the router keys its table: lower-case, without
// a port and without a trailing dot. ok is false for anything that is not a
// plain DNS name or IP literal (empty, control characters, non-ASCII, bad
// port), which the router answers with 400. It allocates only when host has
// upper-case letters.
func CanonicalHost(host string) (canon string, ok bool) {
	if host == "" || len(host) > maxHostLen {
		return "", false
	}
	if host[0] == '[' { // IPv6 literal, with or without a port
		end := strings.IndexByte(host, ']')
		if end < 0 || (end+1 < len(host) && !validPort(host[end+1:])) {
			return "", false
		}
		h := host[1:end]
		for i := 0; i < len(h); i++ {
			c := h[i]
			if !(isHex(c) || c == ':' || c == '.') {
				return "", false
			}
		}
		return lower(host[:end+1]), true
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !validPort(host[i:]) {
			return "", false
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return "", false
	}
	upper := false
	prev := byte('.')
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c >= 'A' && c <= 'Z':
			upper = true
		case c == '.':
			if prev == '.' {
				return "", false // empty label
			}
		default:
			return "", false
		}
		prev = c
	}
	if prev == '.' {
		return "", false // "a.." leaves an empty last label
	}
	if upper {
		return strings.ToLower(host), true
	}
	return host, true
}

// validPort accepts ":" followed by 1 to 5 digits, and a bare ":" (RFC 3986
// allows an empty port).
func validPort(p string) bool {
	if p == "" || p[0] != ':' || len(p) > 6 {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// ValidateDomain checks a custom domain as `domains:add` receives it and
// returns its canonical form (the one to store and compare: a domain
// belongs to one app): a DNS name of at least two labels, optionally
// "*." followed by one (wildcards), without port or IP literal.
func ValidateDomain(d string) (string, error) {
	name := d
	wild := strings.HasPrefix(name, "*.")
	if wild {
		name = name[2:]
	}
	for _, r := range name {
		if r > 0x7f {
			return "", Errorf(EINVALID, "invalid domain %s: give internationalized names in their xn-- (punycode) form", quoteForUser(d))
		}
	}
	canon, ok := CanonicalHost(name)
	if !ok || strings.ContainsAny(name, ":[") || !strings.Contains(canon, ".") || len(canon) > 253 {
		return "", Errorf(EINVALID, "invalid domain %s: use a DNS name like www.example.com or *.example.com", quoteForUser(d))
	}
	for _, label := range strings.Split(canon, ".") {
		if len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", Errorf(EINVALID, "invalid domain %s: each label must be 1 to 63 characters and not start or end with '-'", quoteForUser(d))
		}
	}
	if isIPv4(canon) {
		return "", Errorf(EINVALID, "invalid domain %s: an IP address is not a domain", quoteForUser(d))
	}
	if canon == "localhost" || strings.HasSuffix(canon, ".localhost") {
		return "", Errorf(EINVALID, "invalid domain %s: localhost is not a public name", quoteForUser(d))
	}
	if wild {
		return "*." + canon, nil
	}
	return canon, nil
}

func isIPv4(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
