package router

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff"
)

// Defaults for Config and AppRoute fields left zero.
const (
	DefaultResponseTimeout   = skiff.DefaultResponseTimeout
	DefaultDrainTimeout      = skiff.DefaultWaitToRetire
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// Config is the router's configuration, fixed at New.
type Config struct {
	// BaseDomain gives every app the host <name>.<BaseDomain>.
	BaseDomain string
	// LogDir holds the access logs, <app-id>.log (DATA/logs/router).
	LogDir string
	// TLSDir holds uploaded certificates and ACME state, 0700 (DATA/tls).
	TLSDir string
	// ACME turns on automatic certificates for apps that ask for them.
	ACME ACMEConfig

	ReadHeaderTimeout time.Duration // 0: 10 s
	IdleTimeout       time.Duration // 0: 120 s
	MaxHeaderBytes    int           // 0: 64 KiB
	ResponseTimeout   time.Duration // time to the app's first byte; 0: 30 s
	DrainTimeout      time.Duration // 0: 30 s
	MaxBodyBytes      int64         // default request body cap; 0: none
	BodyIdleTimeout   time.Duration // longest wait for the next bytes of a request body; 0: 60 s
	// HTTPSPort is the public HTTPS port, for redirects (0: 443).
	HTTPSPort int
	// AccessLogMaxBytes rotates an app's access log past this size (0: 10 MiB);
	// AccessLogKeep old files are kept (0: 3).
	AccessLogMaxBytes int64
	AccessLogKeep     int
	// TrustedProxies are the load balancers or CDNs in front of the router
	// whose X-Forwarded-For/-Proto/-Port it believes (forwarded.go).
	TrustedProxies []netip.Prefix
}

// ACMEConfig points the router at an ACME CA. An empty CA disables ACME.
type ACMEConfig struct {
	CA    string // directory URL
	Email string
	// TrustedRoots verifies the CA's own HTTPS endpoint (tests: Pebble's).
	TrustedRoots *x509.CertPool
	// HTTPPort and TLSPort are the ports the CA validates on: the router's
	// public ports (0: 80 and 443). ListenHost is the address they are bound on.
	HTTPPort, TLSPort int
	ListenHost        string
	// RenewCheckInterval is how often certificates are checked for renewal
	// (0: certmagic's default, 10 minutes). Renewal starts when a third of
	// a certificate's lifetime is left.
	RenewCheckInterval time.Duration
	// RetryEvery is the least time between attempts for a name after a
	// failed validation (0: 15 minutes; acmethrottle.go).
	RetryEvery time.Duration
}

// Router is skiff's public gateway. It is an http.Handler and also runs its
// own servers (Serve, ServeTLS).
type Router struct {
	cfg   Config
	log   *slog.Logger
	table atomic.Pointer[table]
	mu    sync.Mutex // serializes table writers

	proxy     *httputil.ReverseProxy
	transport *http.Transport
	direct    *directTransport
	conns     *connTracker
	health    *http.Client
	access    *accessLog
	certs     *certStore
	acme      *acmeManager

	ctx    context.Context // the router's lifetime: ends at Shutdown
	cancel context.CancelFunc

	srvMu     sync.Mutex
	fast      []*fastServer
	listeners []net.Listener
	fresh     atomic.Int64 // accepted connections with no request read yet (conntrack.go)
}

var (
	_ skiff.Routes     = (*Router)(nil)
	_ skiff.AccessLogs = (*Router)(nil)
)

// New returns a router. It creates LogDir and TLSDir, loads the uploaded
// certificates, and starts the access log writer and (with ACME configured)
// certificate maintenance; Shutdown stops them.
func New(cfg Config, log *slog.Logger) (*Router, error) {
	if cfg.LogDir == "" || cfg.TLSDir == "" {
		return nil, fmt.Errorf("router: LogDir and TLSDir are required")
	}
	if cfg.BaseDomain != "" {
		// Any host name will do, "localhost" included (apps then answer at
		// <app>.localhost on the machine itself); custom domains, checked
		// by ValidateDomain, must be public names.
		d, ok := skiff.CanonicalHost(cfg.BaseDomain)
		if !ok || strings.ContainsAny(cfg.BaseDomain, ":*[") {
			return nil, fmt.Errorf("router: base domain %q is not a host name", cfg.BaseDomain)
		}
		cfg.BaseDomain = d
	}
	setDefaults(&cfg)
	for _, d := range []string{cfg.LogDir, cfg.TLSDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
	}
	r := &Router{cfg: cfg, log: log}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.table.Store(emptyTable)
	r.conns = newConnTracker()
	r.transport = newTransport(r.conns)
	r.direct = newDirectTransport(r.transport, r.conns, cfg.ResponseTimeout)
	r.proxy = &httputil.ReverseProxy{
		Rewrite:        r.rewrite,
		Transport:      &proxyTransport{rt: r.direct},
		BufferPool:     bufferPool{},
		ModifyResponse: r.modifyResponse,
		ErrorHandler:   r.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	r.health = &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var err error
	if r.certs, err = newCertStore(cfg.TLSDir, log); err != nil {
		return nil, err
	}
	if cfg.ACME.CA != "" {
		if r.acme, err = newACMEManager(r, cfg); err != nil {
			return nil, err
		}
	}
	r.access = newAccessLog(cfg.LogDir, cfg.AccessLogMaxBytes, cfg.AccessLogKeep, log)
	return r, nil
}

func setDefaults(c *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.ResponseTimeout, DefaultResponseTimeout)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	def(&c.BodyIdleTimeout, 60*time.Second)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.HTTPSPort == 0 {
		c.HTTPSPort = 443
	}
	if c.AccessLogMaxBytes == 0 {
		c.AccessLogMaxBytes = 10 << 20
	}
	if c.AccessLogKeep == 0 {
		c.AccessLogKeep = 3
	}
}

// SetApp adds or replaces an app's route; see skiff.Routes.
func (r *Router) SetApp(route skiff.AppRoute) error {
	if !validID(route.AppID) {
		return skiff.Errorf(skiff.EINVALID, "invalid app id %q", clip(route.AppID))
	}
	if err := skiff.ValidateAppName(route.Name); err != nil {
		return err
	}
	a := &app{route: route}
	seen := map[string]bool{}
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			a.hosts = append(a.hosts, h)
		}
	}
	if r.cfg.BaseDomain != "" {
		add(route.Name + "." + r.cfg.BaseDomain)
	}
	for _, d := range route.Domains {
		canon, err := skiff.ValidateDomain(d)
		if err != nil {
			return err
		}
		add(canon)
	}
	a.route.Domains = append([]string(nil), route.Domains...)
	a.maintenance = []byte(route.MaintenancePage)
	if len(a.maintenance) == 0 {
		a.maintenance = pageMaintenance
	}
	a.maxBody = route.MaxBodyBytes
	if a.maxBody == 0 {
		a.maxBody = r.cfg.MaxBodyBytes
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.table.Load()
	if prev := old.byID[route.AppID]; prev != nil {
		a.state = prev.state
	} else {
		a.state = &appState{}
		a.state.pool.Store(&pool{})
	}
	t, err := old.with(a)
	if err != nil {
		return err
	}
	r.table.Store(t)
	if r.acme != nil {
		r.acme.appChanged(old.byID[route.AppID], a)
	}
	return nil
}

// RemoveApp stops routing to the app; in-flight requests finish.
func (r *Router) RemoveApp(appID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.table.Load()
	a := old.byID[appID]
	if a == nil {
		return
	}
	a.state.removed.Store(true)
	r.table.Store(old.without(appID))
	if r.acme != nil {
		r.acme.appChanged(a, nil)
	}
}

// lookupID returns the app's current route, or nil.
func (r *Router) lookupID(appID string) *app { return r.table.Load().byID[appID] }
