// Package egress makes the connections skiff opens on a user's behalf
// (registry pulls today; webhooks and the like later). They start in the
// daemon, as root, on the host's network, so a user who names the address
// could otherwise reach what only the host should: its loopback services,
// its own SSH port, other apps' instances on the private pool, a cloud's
// metadata service. The Dialer connects only to public addresses, checked
// on the address actually dialled (after DNS, so a name that resolves to
// 127.0.0.1 is refused too, and a rebinding answer changes nothing), unless
// an admin allowed the host by name (--allow-registry, for a registry on the
// LAN). A refusal happens before any packet leaves, so it tells nothing
// about what listens there.
//
// What a remote peer sends never belongs in a user-facing error (the
// daemon's own SSH banner once came back that way): callers report
// Describe's words, and log the rest.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Config is what the dialer may reach.
type Config struct {
	// Allow lists hosts an admin allowed although they are not public:
	// "host" (any port) or "host:port"; the host as the user writes it (a
	// name or an IP literal), compared case-insensitively.
	Allow []string
	// Deny adds ranges to refuse that may be public: skiff's private pool.
	Deny []netip.Prefix
	// HostAddrs lists the host's own addresses (default: its interfaces'
	// addresses, read at each dial).
	HostAddrs func() ([]netip.Addr, error)
	// DialTimeout bounds one connection attempt (default 10s).
	DialTimeout time.Duration
}

// Dialer dials only what Config permits. It is safe for concurrent use.
type Dialer struct {
	cfg   Config
	allow map[string]bool // "host" or "host:port", lower case
}

// New checks cfg.Allow and returns a Dialer.
func New(cfg Config) (*Dialer, error) {
	d := &Dialer{cfg: cfg, allow: map[string]bool{}}
	for _, a := range cfg.Allow {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		host := a
		if h, p, err := net.SplitHostPort(a); err == nil {
			if p == "" || strings.Trim(p, "0123456789") != "" {
				return nil, fmt.Errorf("--allow-registry %q: the port must be a number", a)
			}
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/ @") {
			return nil, fmt.Errorf("--allow-registry %q: give host or host:port", a)
		}
		d.allow[a] = true
	}
	if d.cfg.HostAddrs == nil {
		d.cfg.HostAddrs = interfaceAddrs
	}
	if d.cfg.DialTimeout == 0 {
		d.cfg.DialTimeout = 10 * time.Second
	}
	return d, nil
}

// RefusedError is a dial the policy refused: no connection was attempted.
type RefusedError struct {
	Host string     // as asked for
	Addr netip.Addr // what it resolved to
	Why  string     // "a loopback address", "this server's own address", …
}

func (e *RefusedError) Error() string {
	if e.Addr.String() == e.Host {
		return fmt.Sprintf("%s is %s", e.Host, e.Why)
	}
	return fmt.Sprintf("%s resolves to %s, %s", e.Host, e.Addr, e.Why)
}

// Allowed reports whether an admin allowed host:port.
func (d *Dialer) Allowed(host, port string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	return d.allow[host] || d.allow[strings.ToLower(net.JoinHostPort(host, port))]
}

// DialContext connects like net.Dialer.DialContext, to public addresses
// only, or to a host an admin allowed.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("egress: network %s is not dialled", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	nd := &net.Dialer{Timeout: d.cfg.DialTimeout}
	if !d.Allowed(host, port) {
		nd.Control = func(_, addr string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return err
			}
			if why := d.refuse(ap.Addr()); why != "" {
				return &RefusedError{Host: host, Addr: ap.Addr().Unmap(), Why: why}
			}
			return nil
		}
	}
	return nd.DialContext(ctx, network, address)
}

// refuse says why a is not dialled, or "" when it may be.
func (d *Dialer) refuse(a netip.Addr) string {
	a = a.Unmap()
	if why := notPublic(a); why != "" {
		return why
	}
	for _, p := range d.cfg.Deny {
		if p.Contains(a) {
			return "inside skiff's private network"
		}
	}
	own, err := d.cfg.HostAddrs()
	if err != nil {
		return "not checked against this server's own addresses (" + err.Error() + ")"
	}
	for _, o := range own {
		if o.Unmap() == a {
			return "this server's own address"
		}
	}
	return ""
}

// special are the ranges that are not the public internet (IANA's
// special-purpose registries) beyond what netip classifies itself.
var special = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a reserved address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address (it may stand for a private one)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address (it may stand for a private one)"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/23"), "a reserved address (Teredo and other IETF ranges)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address (it may stand for a private one)"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

func notPublic(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "not an address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsLinkLocalUnicast():
		return "a link-local address (where cloud metadata services live)"
	case a.IsPrivate():
		return "a private address"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast(), a.IsLinkLocalMulticast():
		return "a multicast address"
	case a.IsUnspecified():
		return "the unspecified address"
	case !a.IsGlobalUnicast():
		return "not a unicast address"
	}
	for _, s := range special {
		if s.p.Contains(a) {
			return s.why
		}
	}
	return ""
}

func interfaceAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// Transport is an http.Transport through the dialer: no proxy from the
// environment (a proxy would dial for it), bounded handshakes and waits.
func (d *Dialer) Transport() *http.Transport {
	return &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          16,
	}
}

// Describe puts a failed fetch from host in words of skiff's own, never the
// peer's: what went wrong, and what to do. status is an HTTP status the
// peer answered (0 if none). The detail of err belongs in the log.
func Describe(host string, status int, err error) string {
	var refused *RefusedError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &refused):
		h, _, _ := strings.Cut(host, "/")
		return fmt.Sprintf("%s, which skiff does not connect to on a user's behalf; if it is your own registry, an admin can allow it with skiff serve --allow-registry %s", refused, h)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Sprintf("%s refused access (HTTP %d): the image does not exist or is private (skiff pulls anonymously)", host, status)
	case status == http.StatusNotFound:
		return fmt.Sprintf("%s has no such image (HTTP 404): check the name and the tag", host)
	case status == http.StatusTooManyRequests:
		return fmt.Sprintf("%s is rate-limiting this server (HTTP 429): try again later", host)
	case status != 0:
		return fmt.Sprintf("%s answered HTTP %d", host, status)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s: check the name", dnsErr.Name)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return fmt.Sprintf("%s's TLS certificate is not trusted for that name", host)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("%s did not answer in time", host)
	case isDial(err):
		return fmt.Sprintf("cannot connect to %s", host)
	}
	return fmt.Sprintf("%s did not answer as a registry does (details are in the server's log)", host)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
