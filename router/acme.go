package router

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/skiffhq/skiff"
)

// acmeManager obtains and renews certificates with certmagic, for the exact
// hosts of apps that turned ACME on and for nothing else: certificates are
// ordered when SetApp registers a host, so no TLS handshake or HTTP request
// can make it order one for a name that is not in the route table. Wildcard domains need DNS-01 and are not managed.
type acmeManager struct {
	r      *Router
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	store  *acmeStorage
	// throttle spaces attempts after a failed validation.
	throttle *acmeThrottle
}

func newACMEManager(r *Router, c Config) (*acmeManager, error) {
	every := c.ACME.RetryEvery
	if every == 0 {
		every = acmeRetryEvery
	}
	m := &acmeManager{r: r, store: &acmeStorage{FileStorage: &certmagic.FileStorage{Path: filepath.Join(c.TLSDir, "acme")}},
		throttle: newACMEThrottle(every, filepath.Join(c.TLSDir, "acme-failures.json"))}
	zl := newZapLogger(r.log.With("component", "acme"))
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: c.ACME.RenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		// No OnDemand: certificates are obtained only for the names SetApp
		// hands to ManageAsync, never because of a handshake.
		Storage: m.store,
		Logger:  zl,
		OnEvent: m.throttle.onEvent,
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:             c.ACME.CA,
		Email:          c.ACME.Email,
		Agreed:         true,
		TrustedRoots:   c.ACME.TrustedRoots,
		ListenHost:     c.ACME.ListenHost,
		AltHTTPPort:    c.ACME.HTTPPort,
		AltTLSALPNPort: c.ACME.TLSPort,
		Logger:         zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// acmeHosts are the names of a that ACME manages.
func acmeHosts(a *app) []string {
	if a == nil || !a.route.ACME {
		return nil
	}
	var hs []string
	for _, h := range a.hosts {
		// Wildcards need DNS-01; localhost, .local, .internal and the like
		// cannot get a public certificate at all.
		if !strings.HasPrefix(h, "*.") && strings.Contains(h, ".") && certmagic.SubjectQualifiesForPublicCert(h) {
			hs = append(hs, h)
		}
	}
	return hs
}

// appChanged starts managing the new hosts of an app and stops renewing the
// ones it no longer has. Called with r.mu held.
func (m *acmeManager) appChanged(old, cur *app) {
	was, now := acmeHosts(old), acmeHosts(cur)
	var gone []certmagic.SubjectIssuer
	for _, h := range was {
		if !slices.Contains(now, h) {
			gone = append(gone, certmagic.SubjectIssuer{Subject: h})
		}
	}
	if len(gone) > 0 {
		m.cache.RemoveManaged(gone)
	}
	var added []string
	for _, h := range now {
		if !slices.Contains(was, h) {
			added = append(added, h)
		}
	}
	if len(added) > 0 {
		if err := m.magic.ManageAsync(m.r.ctx, added); err != nil {
			m.r.log.Error("acme: manage", "hosts", added, "err", err)
		}
	}
}

func (m *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// cached returns a valid certificate for name from the cache, or nil.
func (m *acmeManager) cached(name string) *tls.Certificate {
	now := time.Now()
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && now.Before(c.Leaf.NotAfter) && c.Leaf.VerifyHostname(name) == nil {
			tc := c.Certificate
			return &tc
		}
	}
	return nil
}

func (m *acmeManager) certInfos(a *app) []skiff.CertInfo {
	var out []skiff.CertInfo
	for _, h := range acmeHosts(a) {
		if c := m.cached(h); c != nil {
			ci := certInfo("acme", c)
			if f, next, ok := m.throttle.lastFailure(h); ok { // a renewal failed
				ci.Error, ci.NextRetry = f.Err, &next
			}
			out = append(out, ci)
		} else if f, next, ok := m.throttle.lastFailure(h); ok {
			out = append(out, skiff.CertInfo{Source: "acme", Names: []string{h}, Status: "failed", Error: f.Err, NextRetry: &next})
		} else {
			out = append(out, skiff.CertInfo{Source: "acme", Names: []string{h}, Status: "pending"})
		}
	}
	return out
}

// handleHTTPChallenge answers HTTP-01 validation requests for hosts that use
// ACME, from certmagic's token store only: such a host's app never sees the
// challenge path.
func (m *acmeManager) handleHTTPChallenge(w http.ResponseWriter, req *http.Request, host string) bool {
	if !certmagic.LooksLikeHTTPChallenge(req) {
		return false
	}
	if a := m.r.table.Load().exact[host]; a == nil || !a.route.ACME {
		return false
	}
	if !m.issuer.HandleHTTPChallenge(w, req) {
		writePage(w, http.StatusNotFound, pageNotFound)
	}
	return true
}

// stop ends renewals and waits (until ctx ends) for orders in flight to let
// go of their storage; call it after the router's context is cancelled.
func (m *acmeManager) stop(ctx context.Context) error {
	m.cache.Stop()
	return m.store.close(ctx)
}

// clip shortens user input for messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
