package skiff

import (
	"context"
	"time"
)

// AppRoute is how the router serves one app: which hosts reach it and how.
// The backends are not part of it: they change only through a health-gated
// switch (Routes.Deploy), so that no other path can send traffic to an
// instance that has not answered.
type AppRoute struct {
	AppID string // keys the access log file and certificates; stable across renames
	Name  string // the app's name: <Name>.<base domain> is always one of its hosts

	// Domains are the app's custom hosts, canonical (see the router's
	// CanonicalHost). "*.example.com" matches one label below example.com.
	Domains []string

	Health HealthCheck

	// Maintenance answers every request with 503 and MaintenancePage (an HTML
	// document; empty for the default page) while the instances keep running.
	Maintenance     bool
	MaintenancePage string

	// ACME obtains and renews certificates for the app's hosts automatically.
	ACME bool
	// HSTS adds Strict-Transport-Security to HTTPS responses.
	HSTS bool
	// NoRedirect keeps serving plain HTTP once the app has a certificate;
	// by default such requests are redirected to HTTPS.
	NoRedirect bool

	MaxBodyBytes    int64         // request body cap; 0 for the router's default, <0 for none
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
	NotAfter time.Time `json:"not_after"`
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
	// RemoveApp stops routing to the app at once and forgets it. Idempotent.
	RemoveApp(appID string)
	// SetCertificate stores an uploaded certificate (PEM chain and key) for
	// the app; it must cover at least one of the app's hosts (EINVALID).
	SetCertificate(appID string, certPEM, keyPEM []byte) error
	RemoveCertificate(appID string) error
	Certificates(appID string) []CertInfo
}
